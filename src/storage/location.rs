//! Locations: where a warehouse, table, view or file lives, parsed and normalised once.
//!
//! Iceberg locations are strings that every engine treats literally: Java's Hadoop and S3
//! file IO, PyIceberg's PyArrow and fsspec IO and the iceberg crate all take the path as it is
//! written, without percent-decoding it. Serac does the same, so a location means one file for
//! every client. To keep that meaning unambiguous, a location is refused when any reader could
//! take it another way:
//!
//! - `..` segments (and segments in which a percent-decoding reader would find a `.` or `..`
//!   segment), `?`, `#`, backslashes and control characters;
//! - a `file` location with a host (`file://host/p` is `/host/p` to some readers and a remote
//!   host to others);
//! - schemes other than `file` and the S3 family.
//!
//! `file` locations lose empty and `.` segments (the file system ignores them too) and come out
//! as `file:///a/b`, whether written `file:/a/b`, `file:///a//b/` or `file:///a/./b`. Object
//! store keys are compared as written, so an empty segment there is refused instead.
//!
//! Every read, write and delete of the storage layer takes a [`Location`]; confinement is
//! [`Location::is_within`] against the warehouse root.

use std::fmt;

/// Longest path segment accepted (file systems allow 255 bytes per name).
const MAX_SEGMENT: usize = 255;

/// Longest encoded path segment Serac generates (file systems allow 255 bytes per name).
const MAX_GENERATED_SEGMENT: usize = 200;

/// Why a location string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("location '{location}' {reason}")]
pub struct LocationError {
    location: String,
    reason: String,
}

impl LocationError {
    fn new(raw: &str, reason: impl Into<String>) -> Self {
        // Keep messages short and printable whatever the client sent.
        let mut location: String = raw.chars().take(300).collect();
        if location.len() < raw.len() {
            location.push('…');
        }
        Self {
            location: location.escape_debug().to_string(),
            reason: reason.into(),
        }
    }
}

/// A storage scheme Serac can confine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    File,
    /// `s3`, `s3a` or `s3n` (kept as written: clients look at the scheme).
    S3(&'static str),
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::S3(s) => s,
        }
    }
}

/// A normalised location: scheme, bucket (empty for files) and path segments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    scheme: Scheme,
    bucket: String,
    /// The path without leading or trailing slash; empty for a root.
    path: String,
}

impl Location {
    /// Parses and normalises a location; see the module documentation for what is refused.
    pub fn parse(raw: &str) -> Result<Self, LocationError> {
        if let Some(c) = raw.chars().find(|c| c.is_control()) {
            return Err(LocationError::new(
                raw,
                format!("contains the control character U+{:04X}", c as u32),
            ));
        }
        for (c, name) in [('?', "'?'"), ('#', "'#'"), ('\\', "a backslash")] {
            if raw.contains(c) {
                return Err(LocationError::new(
                    raw,
                    format!("contains {name}, which clients read differently"),
                ));
            }
        }
        let (scheme, rest) = raw.split_once(':').ok_or_else(|| {
            LocationError::new(
                raw,
                "is not a URL; use for example file:///var/lib/warehouse",
            )
        })?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "file" => Scheme::File,
            "s3" => Scheme::S3("s3"),
            "s3a" => Scheme::S3("s3a"),
            "s3n" => Scheme::S3("s3n"),
            other => {
                return Err(LocationError::new(
                    raw,
                    format!(
                        "has the scheme '{other}', which this server does not serve (file, s3)"
                    ),
                ));
            }
        };
        let (bucket, path) = match scheme {
            Scheme::File => {
                let path = match rest.strip_prefix("//") {
                    Some(after) => {
                        let (host, path) = after.split_at(after.find('/').unwrap_or(after.len()));
                        if !host.is_empty() {
                            return Err(LocationError::new(
                                raw,
                                "names a host; a file location is file:///absolute/path",
                            ));
                        }
                        path
                    }
                    None => rest,
                };
                if !path.starts_with('/') {
                    return Err(LocationError::new(
                        raw,
                        "is not an absolute path; a file location is file:///absolute/path",
                    ));
                }
                (String::new(), path)
            }
            Scheme::S3(_) => {
                let after = rest.strip_prefix("//").ok_or_else(|| {
                    LocationError::new(raw, "is not of the form s3://bucket/path")
                })?;
                let (bucket, path) = after.split_at(after.find('/').unwrap_or(after.len()));
                if !valid_bucket(bucket) {
                    return Err(LocationError::new(raw, "does not name a valid bucket"));
                }
                (bucket.to_owned(), path)
            }
        };
        let mut segments = Vec::new();
        let inner = path.trim_start_matches('/');
        let inner = inner.strip_suffix('/').unwrap_or(inner);
        for segment in inner.split('/') {
            match segment {
                "" if inner.is_empty() => {}
                "" | "." if scheme == Scheme::File => {}
                "" => {
                    return Err(LocationError::new(raw, "has an empty path segment ('//')"));
                }
                "." | ".." => {
                    return Err(LocationError::new(
                        raw,
                        format!("has a '{segment}' segment; give the path without it"),
                    ));
                }
                _ if segment.len() > MAX_SEGMENT => {
                    return Err(LocationError::new(
                        raw,
                        format!("has a path segment longer than {MAX_SEGMENT} bytes"),
                    ));
                }
                _ => {
                    // A reader that decoded the segment must not find a dot segment in it.
                    let decoded = percent_decode(segment);
                    if decoded.split(['/', '\\']).any(|p| p == "." || p == "..") {
                        return Err(LocationError::new(
                            raw,
                            format!("has the segment '{segment}', which decodes to a dot segment"),
                        ));
                    }
                    segments.push(segment);
                }
            }
        }
        Ok(Self {
            scheme,
            bucket,
            path: segments.join("/"),
        })
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The bucket of an object store location (empty for files).
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The path below the bucket or file system root, without leading or trailing slash.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether this is a bucket or file system root (no path).
    pub fn is_root(&self) -> bool {
        self.path.is_empty()
    }

    /// The local path of a `file` location.
    pub fn local_path(&self) -> Option<std::path::PathBuf> {
        (self.scheme == Scheme::File).then(|| std::path::PathBuf::from(format!("/{}", self.path)))
    }

    /// Whether this location is `root` or lies below it (segment-wise: `/a/bc` is not within
    /// `/a/b`).
    pub fn is_within(&self, root: &Location) -> bool {
        self.scheme == root.scheme
            && self.bucket == root.bucket
            && (root.path.is_empty()
                || self.path == root.path
                || (self.path.starts_with(&root.path)
                    && self.path.as_bytes().get(root.path.len()) == Some(&b'/')))
    }

    /// Whether one of the two lies within the other.
    pub fn overlaps(&self, other: &Location) -> bool {
        self.is_within(other) || other.is_within(self)
    }

    /// This location and every ancestor up to the root, nearest first.
    pub fn self_and_ancestors(&self) -> Vec<Location> {
        let mut out = vec![self.clone()];
        let mut path = self.path.as_str();
        while let Some((parent, _)) = path.rsplit_once('/') {
            out.push(Self {
                path: parent.to_owned(),
                ..self.clone()
            });
            path = parent;
        }
        if !self.path.is_empty() {
            out.push(Self {
                path: String::new(),
                ..self.clone()
            });
        }
        out
    }

    /// A child location: `segments` is a relative path Serac built (`metadata/00001-x.json`),
    /// not client input.
    pub fn join(&self, segments: &str) -> Location {
        let segments = segments.trim_matches('/');
        let path = if self.path.is_empty() {
            segments.to_owned()
        } else if segments.is_empty() {
            self.path.clone()
        } else {
            format!("{}/{segments}", self.path)
        };
        Self {
            path,
            ..self.clone()
        }
    }

    /// A child named after a catalog name (a namespace level, a table name), escaped so that
    /// every name is one segment and no two names give the same segment.
    pub fn join_name(&self, name: &str) -> Location {
        self.join(&encode_segment(name, usize::MAX))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}/{}",
            self.scheme.as_str(),
            self.bucket,
            self.path
        )
    }
}

/// S3 bucket names: 3 to 63 lower-case letters, digits, dots and hyphens (and MinIO-style
/// underscores are refused too).
fn valid_bucket(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

fn percent_decode(segment: &str) -> String {
    if !segment.contains('%') {
        return segment.to_owned();
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// A catalog name as one path segment: ASCII letters, digits, `-`, `_` and `.` and every
/// non-ASCII character stay as they are, every other byte becomes `%XX` (so `%` itself is
/// `%25` and the encoding is one-to-one). The names `.` and `..`, which the catalog refuses
/// anyway, become `%252E` per dot, never a dot segment. The result is cut to `max_len` bytes
/// at a character boundary (callers that cut add a unique suffix).
pub fn encode_segment(name: &str, max_len: usize) -> String {
    if name == "." || name == ".." {
        return "%252E".repeat(name.len());
    }
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let keep = !c.is_ascii() || c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        let piece = if keep {
            c.to_string()
        } else {
            format!("%{:02X}", c as u32)
        };
        if out.len() + piece.len() > max_len {
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// The directory segment of a new table or view: its escaped name (cut short when long) and
/// a unique suffix, so that a recreated name never meets the files of its predecessor.
pub fn object_dir_segment(name: &str, unique: &str) -> String {
    format!("{}-{unique}", encode_segment(name, MAX_GENERATED_SEGMENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(s: &str) -> Location {
        Location::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn file_forms_normalise_to_one() {
        for raw in [
            "file:///a/b",
            "file:/a/b",
            "file:///a//b/",
            "file:///a/./b",
            "FILE:///a/b",
            "file:////a/b",
        ] {
            assert_eq!(loc(raw).to_string(), "file:///a/b", "{raw}");
        }
        assert_eq!(loc("file:///").to_string(), "file:///");
        assert!(loc("file:///").is_root());
    }

    #[test]
    fn ambiguous_locations_are_refused() {
        for raw in [
            "file:///a/../etc",
            "file:///a/%2e%2e/etc",
            "file:///a/%2E./etc",
            "file:///a/b%2f..%2fc",
            "file:///a/..%5Cc",
            "file:///a/b?x",
            "file:///a/b#x",
            "file:///a\\b",
            "file://host/a",
            "file:relative",
            "/abs/path",
            "relative",
            "hdfs://nn/a",
            "s3://b/a",
            "s3://bucket/a//b",
            "s3://Bucket/a",
            "s3:/bucket/a",
            "file:///a/\u{0}b",
            "file:///a/\nb",
            &format!("file:///a/{}", "x".repeat(256)),
        ] {
            assert!(Location::parse(raw).is_err(), "{raw} was accepted");
        }
    }

    #[test]
    fn s3_locations_keep_their_scheme() {
        assert_eq!(loc("s3a://bucket/x/y/").to_string(), "s3a://bucket/x/y");
        assert_eq!(loc("s3://bucket").to_string(), "s3://bucket/");
        assert!(loc("s3://bucket/x").is_within(&loc("s3://bucket")));
        assert!(!loc("s3://bucket/x").is_within(&loc("s3://other/x")));
        assert!(!loc("s3://bucket/x").is_within(&loc("s3a://bucket/x")));
    }

    #[test]
    fn within_is_segment_wise() {
        let root = loc("file:///w/h");
        assert!(loc("file:///w/h").is_within(&root));
        assert!(loc("file:///w/h/t").is_within(&root));
        assert!(!loc("file:///w/hx").is_within(&root));
        assert!(!loc("file:///w").is_within(&root));
        assert!(loc("file:///w").overlaps(&root));
        assert!(loc("file:///anything").is_within(&loc("file:///")));
    }

    #[test]
    fn ancestors_run_to_the_root() {
        let all: Vec<String> = loc("file:///a/b/c")
            .self_and_ancestors()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            all,
            ["file:///a/b/c", "file:///a/b", "file:///a", "file:///"]
        );
    }

    #[test]
    fn names_encode_one_to_one() {
        assert_eq!(encode_segment("plain_Name-1.x", 255), "plain_Name-1.x");
        assert_eq!(encode_segment("h#2", 255), "h%232");
        assert_eq!(encode_segment("q?x", 255), "q%3Fx");
        assert_eq!(encode_segment("q#x", 255), "q%23x");
        assert_eq!(encode_segment("50%", 255), "50%25");
        assert_eq!(encode_segment("a b/c", 255), "a%20b%2Fc");
        assert_eq!(encode_segment("..", 255), "%252E%252E");
        assert_eq!(encode_segment("...", 255), "...");
        assert_eq!(encode_segment("ünï", 255), "ünï");
        // Encoded names are valid location segments and decode to no dot segment.
        for name in ["..", ".", "a/b", "%2e%2e", "x\\y"] {
            let child = loc("file:///w").join_name(name);
            assert_eq!(
                Location::parse(&child.to_string()).unwrap(),
                child,
                "{name}"
            );
        }
    }

    #[test]
    fn long_names_are_cut_at_a_boundary() {
        let name = "é".repeat(200);
        let seg = object_dir_segment(&name, "0123");
        assert!(seg.len() <= MAX_GENERATED_SEGMENT + 5, "{}", seg.len());
        assert!(seg.ends_with("-0123"));
        let name = "#".repeat(100);
        let seg = encode_segment(&name, 10);
        assert_eq!(seg, "%23%23%23");
    }
}
