//! Remote signing: clients send the S3 request they are about to make (method, URI,
//! headers, and only for a batch delete the payload), and Serac signs it with the profile's
//! keys (SigV4) when it stays inside one table's location.
//!
//! The scope check is strict: the request must go to the profile's endpoint (path-style or
//! virtual-hosted), to the table's bucket, and either to an object below the table's
//! location, be a listing of the bucket whose `prefix` lies within the table, or be a batch
//! delete (`POST ?delete`) whose body is given and names only keys below the table. Other
//! sub-resources (ACLs, policies, tagging) are refused.
//!
//! The payload is not signed (`UNSIGNED-PAYLOAD`), except for a batch delete: there the
//! signature covers the SHA-256 of the body that was checked, so a store that receives
//! another body refuses the request (and the checksum headers the client sends with it,
//! `Content-MD5` or `x-amz-checksum-*`, must match that body and are signed too).

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine;
use sha2::Digest;

use super::credentials::Access;
use super::location::Location;
use super::profile::S3Profile;

/// A request to sign, as clients send it (the spec's `RemoteSignRequest`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct SignRequest {
    pub method: String,
    pub region: String,
    pub uri: String,
    #[serde(default)]
    pub headers: BTreeMap<String, Vec<String>>,
    /// Passed through by the client unchanged (on the legacy path they may name the table).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// The payload, for requests whose content decides what they reach (batch deletes).
    #[serde(default)]
    pub body: Option<String>,
    /// The storage provider (`s3` when absent).
    #[serde(default)]
    pub provider: Option<String>,
}

/// The signed request: the URI and every header to send.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignedRequest {
    pub uri: String,
    pub headers: BTreeMap<String, Vec<String>>,
}

/// Why a request was not signed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    /// Outside what the caller may reach: the table's objects, with its privileges.
    #[error("{0}")]
    Refused(String),
    /// Not a request that can be signed (a bad URI, a method S3 does not take).
    #[error("{0}")]
    Invalid(String),
}

/// Object sub-resources that may be signed (multipart uploads, versions, the SDKs' `x-id`).
const OBJECT_QUERY: [&str; 5] = ["uploads", "uploadId", "partNumber", "versionId", "x-id"];
/// Headers (by prefix) that would reach beyond the table or outlive it: a copy from another
/// object, ACLs and grants, object locks.
const REFUSED_HEADERS: [&str; 5] = [
    "x-amz-copy-source",
    "x-amz-acl",
    "x-amz-grant-",
    "x-amz-object-lock-",
    "x-amz-bypass-governance-retention",
];
/// Query parameters of a batch delete (`POST /bucket?delete`).
const DELETE_QUERY: [&str; 2] = ["delete", "x-id"];
/// The largest batch delete body signed: S3 takes at most 1,000 keys of at most 1,024 bytes
/// each; escaped in XML they stay far below this.
pub const MAX_DELETE_BODY: usize = 2 * 1024 * 1024;
/// The most keys in one batch delete (S3's own limit).
pub const MAX_DELETE_KEYS: usize = 1_000;
/// Checksum headers of a batch delete, each checked against the body.
const CHECKSUM_HEADERS: [&str; 5] = [
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-crc64nvme",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
];
/// Query parameters of a bucket listing.
const LIST_QUERY: [&str; 9] = [
    "list-type",
    "prefix",
    "delimiter",
    "continuation-token",
    "start-after",
    "max-keys",
    "encoding-type",
    "fetch-owner",
    "x-id",
];

/// What the request needs: reading or writing.
pub fn access_of(method: &str) -> Result<Access, SignError> {
    match method.to_ascii_uppercase().as_str() {
        "GET" | "HEAD" => Ok(Access::Read),
        "PUT" | "POST" | "DELETE" => Ok(Access::ReadWrite),
        other => Err(SignError::Invalid(format!(
            "method '{}' cannot be signed",
            other.escape_debug()
        ))),
    }
}

/// The bucket and key (percent-decoded; empty for the bucket itself) a request URI names,
/// when it goes to the profile's endpoint.
fn bucket_and_key(profile: &S3Profile, uri: &url::Url) -> Result<(String, String), SignError> {
    let host = uri
        .host_str()
        .ok_or_else(|| SignError::Invalid("the URI has no host".into()))?
        .to_ascii_lowercase();
    let port = uri.port_or_known_default();
    let endpoint_host = match &profile.endpoint {
        Some(endpoint) => {
            let endpoint = url::Url::parse(endpoint)
                .map_err(|e| SignError::Invalid(format!("the profile's endpoint: {e}")))?;
            if endpoint.scheme() != uri.scheme() || endpoint.port_or_known_default() != port {
                return Err(SignError::Refused(
                    "the request does not go to the warehouse's endpoint".into(),
                ));
            }
            endpoint.host_str().unwrap_or_default().to_ascii_lowercase()
        }
        None => format!("s3.{}.amazonaws.com", profile.region),
    };
    let path = uri.path().trim_start_matches('/');
    let decode = |s: &str| {
        percent_decode(s).ok_or_else(|| SignError::Invalid("the URI path is not valid".into()))
    };
    if host == endpoint_host {
        let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
        return Ok((decode(bucket)?, decode(key)?));
    }
    if let Some(bucket) = host.strip_suffix(&format!(".{endpoint_host}"))
        && !bucket.is_empty()
    {
        return Ok((bucket.to_owned(), decode(path)?));
    }
    Err(SignError::Refused(
        "the request does not go to the warehouse's endpoint".into(),
    ))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Checks that `request` stays inside the table at `table` with `access`; returns the
/// parsed URI.
pub fn check_scope(
    profile: &S3Profile,
    table: &Location,
    access: Access,
    request: &SignRequest,
) -> Result<url::Url, SignError> {
    if let Some(provider) = &request.provider
        && !provider.eq_ignore_ascii_case("s3")
    {
        return Err(SignError::Invalid(format!(
            "provider '{}' is not signed here (only s3)",
            provider.escape_debug()
        )));
    }
    let needed = access_of(&request.method)?;
    if needed == Access::ReadWrite && access == Access::Read {
        return Err(SignError::Refused(
            "the caller may only read this table".into(),
        ));
    }
    if let Some(name) = request.headers.keys().find(|name| {
        let name = name.to_ascii_lowercase();
        REFUSED_HEADERS
            .iter()
            .any(|refused| name.starts_with(refused))
    }) {
        return Err(SignError::Refused(format!(
            "requests with '{}' are not signed",
            name.escape_debug()
        )));
    }
    let uri = url::Url::parse(&request.uri)
        .map_err(|e| SignError::Invalid(format!("the URI is not valid: {e}")))?;
    let (bucket, key) = bucket_and_key(profile, &uri)?;
    if bucket != table.bucket() {
        return Err(SignError::Refused(format!(
            "bucket '{}' is not the table's",
            bucket.escape_debug()
        )));
    }
    let prefix = table.path();
    let query: Vec<(String, String)> = uri.query_pairs().into_owned().collect();
    if key.is_empty() {
        if is_batch_delete(&request.method, &query) {
            // Every key the body names must lie inside the table, as a single key must.
            for key in delete_keys(request)? {
                check_key(prefix, &key)?;
            }
            return Ok(uri);
        }
        // The bucket itself: only a listing below the table.
        let listed = query
            .iter()
            .find(|(k, _)| k == "prefix")
            .map(|(_, v)| v.as_str());
        let prefix_ok = listed.is_some_and(|p| p == prefix || within(prefix, p));
        if needed != Access::Read
            || !prefix_ok
            || query.iter().any(|(k, _)| !LIST_QUERY.contains(&k.as_str()))
        {
            return Err(SignError::Refused(
                "only listings below the table's location and batch deletes of its keys are signed on the bucket"
                    .into(),
            ));
        }
        return Ok(uri);
    }
    check_key(prefix, &key)?;
    if let Some((k, _)) = query
        .iter()
        .find(|(k, _)| !OBJECT_QUERY.contains(&k.as_str()))
    {
        return Err(SignError::Refused(format!(
            "the sub-resource '{}' is not signed",
            k.escape_debug()
        )));
    }
    Ok(uri)
}

/// Whether `key` lies strictly below `prefix` (the table's path in its bucket).
fn within(prefix: &str, key: &str) -> bool {
    key.starts_with(prefix) && key.as_bytes().get(prefix.len()) == Some(&b'/')
}

/// Refuses a key outside the table, with `.`, `..` or empty segments, or control characters
/// (which XML and stores may normalise differently).
fn check_key(prefix: &str, key: &str) -> Result<(), SignError> {
    if !within(prefix, key)
        || key
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        || key.chars().any(char::is_control)
    {
        return Err(SignError::Refused(format!(
            "'{}' lies outside the table's location",
            key.escape_debug()
        )));
    }
    Ok(())
}

/// Whether a client's request is a batch delete (`POST /bucket?delete`).
pub fn is_batch_delete_request(request: &SignRequest) -> bool {
    url::Url::parse(&request.uri).is_ok_and(|uri| {
        let query: Vec<(String, String)> = uri.query_pairs().into_owned().collect();
        is_batch_delete(&request.method, &query)
    })
}

/// Whether a request is a batch delete (`POST /bucket?delete`).
fn is_batch_delete(method: &str, query: &[(String, String)]) -> bool {
    method.eq_ignore_ascii_case("POST")
        && query.iter().any(|(k, _)| k == "delete")
        && query
            .iter()
            .all(|(k, _)| DELETE_QUERY.contains(&k.as_str()))
}

/// The keys of a batch delete's body (the S3 `Delete` document). Refused without a body;
/// anything but the documented elements (a DOCTYPE, unknown or prefixed element names, text
/// where none belongs, an object with no key or two) is invalid, so that no other reader of
/// the same bytes can see other keys.
pub fn delete_keys(request: &SignRequest) -> Result<Vec<String>, SignError> {
    use quick_xml::events::Event;

    let Some(body) = request.body.as_deref() else {
        return Err(SignError::Refused(
            "a batch delete is signed only with its body (the keys it deletes)".into(),
        ));
    };
    if body.len() > MAX_DELETE_BODY {
        return Err(SignError::Invalid(format!(
            "the batch delete body is larger than {MAX_DELETE_BODY} bytes"
        )));
    }
    let invalid = |what: String| SignError::Invalid(format!("the batch delete body: {what}"));
    let mut reader = quick_xml::Reader::from_str(body);
    let mut path: Vec<String> = Vec::new();
    let mut keys = Vec::new();
    // The text of the element being read (a key, a version id, ...).
    let mut text = String::new();
    let mut key_of_object: Option<String> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| invalid(format!("not XML: {e}")))?;
        match event {
            Event::Decl(_) if path.is_empty() && keys.is_empty() => {}
            Event::Comment(_) => {}
            Event::Start(e) => {
                let name = e.name().as_ref().to_owned();
                let allowed = match path.last().map(String::as_str) {
                    None => name == "Delete",
                    Some("Delete") => name == "Object" || name == "Quiet",
                    Some("Object") => matches!(
                        name.as_str(),
                        "Key" | "VersionId" | "ETag" | "LastModifiedTime" | "Size"
                    ),
                    Some(_) => false,
                };
                if !allowed || (path.is_empty() && !keys.is_empty()) {
                    return Err(invalid(format!(
                        "unexpected element '{}'",
                        name.escape_debug()
                    )));
                }
                if name == "Object" {
                    key_of_object = None;
                }
                text.clear();
                path.push(name);
            }
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                match name.as_str() {
                    "Key" => {
                        if key_of_object.is_some() {
                            return Err(invalid("an object with two keys".into()));
                        }
                        if text.is_empty() {
                            return Err(invalid("an empty key".into()));
                        }
                        key_of_object = Some(std::mem::take(&mut text));
                    }
                    "Object" => {
                        let key = key_of_object
                            .take()
                            .ok_or_else(|| invalid("an object without a key".into()))?;
                        keys.push(key);
                        if keys.len() > MAX_DELETE_KEYS {
                            return Err(invalid(format!("more than {MAX_DELETE_KEYS} keys")));
                        }
                    }
                    _ => {}
                }
                text.clear();
            }
            Event::Text(t) => {
                let raw: &str = t.as_ref();
                if is_leaf(&path) {
                    text.push_str(raw);
                } else if !raw.trim().is_empty() {
                    return Err(invalid("text outside an element's value".into()));
                }
            }
            Event::CData(t) if is_leaf(&path) => {
                text.push_str(t.as_ref());
            }
            Event::GeneralRef(r) if is_leaf(&path) => {
                let c = match r.resolve_char_ref() {
                    Ok(Some(c)) => c,
                    _ => match r.as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => {
                            return Err(invalid(format!(
                                "unknown entity '{}'",
                                other.escape_debug()
                            )));
                        }
                    },
                };
                text.push(c);
            }
            Event::Eof => break,
            other => {
                return Err(invalid(format!(
                    "unexpected {}",
                    format!("{other:?}").escape_debug()
                )));
            }
        }
    }
    if !path.is_empty() || keys.is_empty() {
        return Err(invalid("no complete Delete element with objects".into()));
    }
    Ok(keys)
}

/// Whether the element being read holds a value (not other elements).
fn is_leaf(path: &[String]) -> bool {
    path.len() == 3 || (path.len() == 2 && path[1] == "Quiet")
}

/// What a client's `x-amz-content-sha256` may say: no payload signature, an unsigned
/// payload with trailing checksums, or the payload's SHA-256. A chunk-signed payload cannot
/// be: its chunks need the key.
fn payload_hash(request: &SignRequest) -> Result<Option<String>, SignError> {
    let Some(value) = header(request, "x-amz-content-sha256") else {
        return Ok(None);
    };
    let is_hash = value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hash {
        Ok(Some(value.to_ascii_lowercase()))
    } else if value == "UNSIGNED-PAYLOAD" || value == "STREAMING-UNSIGNED-PAYLOAD-TRAILER" {
        Ok(Some(value))
    } else {
        Err(SignError::Invalid(format!(
            "x-amz-content-sha256 '{}' cannot be signed remotely",
            value.escape_debug()
        )))
    }
}

/// The value of a header (names compare without case; several values joined by commas).
fn header<'a>(request: &'a SignRequest, name: &str) -> Option<String> {
    let values: Vec<&'a str> = request
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.iter().map(String::as_str))
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// A batch delete's payload hash, after checking that what the client says of its body
/// (`x-amz-content-sha256`, `Content-MD5`, `x-amz-checksum-*`) matches the body checked.
fn batch_delete_hash(request: &SignRequest, body: &str) -> Result<String, SignError> {
    let sha256 = hex::encode(sha2::Sha256::digest(body.as_bytes()));
    let mismatch = |name: &str| {
        SignError::Invalid(format!(
            "the {name} header does not match the batch delete body"
        ))
    };
    if let Some(claimed) = payload_hash(request)?
        && claimed != sha256
    {
        return Err(mismatch("x-amz-content-sha256"));
    }
    if let Some(claimed) = header(request, "content-md5") {
        let md5 =
            base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body.as_bytes()));
        if claimed.trim() != md5 {
            return Err(mismatch("Content-MD5"));
        }
    }
    for name in CHECKSUM_HEADERS {
        if let Some(claimed) = header(request, name) {
            let algorithm: aws_smithy_checksums::ChecksumAlgorithm = name
                .trim_start_matches("x-amz-checksum-")
                .parse()
                .map_err(|_| mismatch(name))?;
            let mut checksum = algorithm.into_impl();
            checksum.update(body.as_bytes());
            if checksum.header_value().as_bytes() != claimed.trim().as_bytes() {
                return Err(mismatch(name));
            }
        }
    }
    Ok(sha256)
}

/// Where a request may lead, for finding its table when the client does not name it: the
/// bucket and key (or listed prefix, or the first key of a batch delete) read path-style and
/// virtual-hosted, as `s3://bucket/key` (the profile decides later which was meant).
pub fn candidate_locations(request: &SignRequest) -> Vec<String> {
    let Ok(uri) = url::Url::parse(&request.uri) else {
        return Vec::new();
    };
    let query: Vec<(String, String)> = uri.query_pairs().into_owned().collect();
    let path = uri.path().trim_start_matches('/');
    let mut out = Vec::new();
    let mut push = |bucket: &str, key: &str| {
        let key = if !key.is_empty() {
            Some(key.to_owned())
        } else if is_batch_delete(&request.method, &query) {
            delete_keys(request).ok().and_then(|k| k.into_iter().next())
        } else {
            query
                .iter()
                .find(|(k, _)| k == "prefix")
                .map(|(_, v)| v.trim_end_matches('/').to_owned())
        };
        if let (Some(key), false) = (key, bucket.is_empty()) {
            out.push(format!("s3://{bucket}/{key}"));
        }
    };
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    if let (Some(bucket), Some(key)) = (percent_decode(bucket), percent_decode(key)) {
        push(&bucket, &key);
    }
    if let (Some(host), Some(key)) = (uri.host_str(), percent_decode(path))
        && let Some((bucket, _)) = host.split_once('.')
    {
        push(bucket, &key);
    }
    out
}

/// Signs a request (already checked with [`check_scope`]) with the profile's keys.
pub fn sign_request(
    profile: &S3Profile,
    uri: &url::Url,
    request: &SignRequest,
) -> Result<SignedRequest, SignError> {
    let identity = aws_sdk_s3::config::Credentials::new(
        profile.access_key_id.clone(),
        profile.secret_access_key.expose().to_owned(),
        None,
        None,
        "serac-storage-profile",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    // S3 keys are literal: no path normalisation, single percent-encoding.
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    let region = if request.region.is_empty() {
        profile.region.as_str()
    } else {
        request.region.as_str()
    };
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| SignError::Invalid(format!("signing failed: {e}")))?
        .into();
    // The payload: a batch delete's checked body, else what the client says it sends
    // (unsigned when it says nothing).
    let batch_delete = request.body.as_deref().filter(|_| {
        let query: Vec<(String, String)> = uri.query_pairs().into_owned().collect();
        is_batch_delete(&request.method, &query)
    });
    let payload = match batch_delete {
        Some(body) => Some(batch_delete_hash(request, body)?),
        None => payload_hash(request)?,
    };
    // What is signed: the host and every `x-amz-*` header the client sends (S3 refuses
    // unsigned ones), and a batch delete's `Content-MD5`, but not the ones the signature
    // sets itself. Other headers stay unsigned: they cannot widen what the request reaches.
    let signed: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.join(",")))
        .filter(|(name, _)| {
            (name.starts_with("x-amz-") || (batch_delete.is_some() && name == "content-md5"))
                && !matches!(
                    name.as_str(),
                    "x-amz-date" | "x-amz-content-sha256" | "x-amz-security-token"
                )
        })
        .collect();
    let body = match &payload {
        Some(hash) => SignableBody::Precomputed(hash.clone()),
        None => SignableBody::UnsignedPayload,
    };
    let signable = SignableRequest::new(
        request.method.as_str(),
        uri.as_str(),
        signed.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        body,
    )
    .map_err(|e| SignError::Invalid(format!("the request cannot be signed: {e}")))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| SignError::Invalid(format!("signing failed: {e}")))?
        .into_parts();
    // The answer holds the headers the signature adds, and only those: PyIceberg appends
    // every header of the answer to its request (a header it already has would go twice),
    // and Java's `S3V4RestSignerClient` adds them under its own, which win on a clash.
    let headers = instructions
        .headers()
        .map(|(name, value)| (name.to_ascii_lowercase(), vec![value.to_owned()]))
        .collect();
    Ok(SignedRequest {
        uri: uri.to_string(),
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::profile::{CredentialMode, Secret};

    fn profile() -> S3Profile {
        S3Profile {
            endpoint: Some("http://127.0.0.1:8333".into()),
            region: "us-east-1".into(),
            path_style_access: true,
            access_key_id: "AKID".into(),
            secret_access_key: Secret::new("secret"),
            credential_mode: CredentialMode::RemoteSigning,
            sts: None,
            kms_key_arn: None,
        }
    }

    fn request(method: &str, uri: &str) -> SignRequest {
        SignRequest {
            method: method.into(),
            region: "us-east-1".into(),
            uri: uri.into(),
            ..SignRequest::default()
        }
    }

    fn check(access: Access, method: &str, uri: &str) -> Result<(), SignError> {
        let table = Location::parse("s3://lake/wh/ns/t1").unwrap();
        check_scope(&profile(), &table, access, &request(method, uri)).map(|_| ())
    }

    #[test]
    fn requests_inside_the_table_are_signed() {
        let rw = Access::ReadWrite;
        for (method, uri) in [
            ("GET", "http://127.0.0.1:8333/lake/wh/ns/t1/data/a.parquet"),
            ("PUT", "http://127.0.0.1:8333/lake/wh/ns/t1/metadata/x.avro"),
            (
                "DELETE",
                "http://127.0.0.1:8333/lake/wh/ns/t1/data/a.parquet",
            ),
            (
                "POST",
                "http://127.0.0.1:8333/lake/wh/ns/t1/data/big?uploads",
            ),
            (
                "GET",
                "http://127.0.0.1:8333/lake?list-type=2&prefix=wh/ns/t1/data/",
            ),
        ] {
            assert_eq!(check(rw, method, uri), Ok(()), "{method} {uri}");
        }
        // Virtual-hosted style: the bucket in the host name.
        let mut virtual_hosted = profile();
        virtual_hosted.endpoint = Some("http://s3.local:8333".into());
        let table = Location::parse("s3://lake/wh/ns/t1").unwrap();
        let head = request(
            "HEAD",
            "http://lake.s3.local:8333/wh/ns/t1/data/a%20b.parquet",
        );
        assert!(check_scope(&virtual_hosted, &table, rw, &head).is_ok());
        let other = request("HEAD", "http://other.s3.local:8333/wh/ns/t1/data/a.parquet");
        assert!(check_scope(&virtual_hosted, &table, rw, &other).is_err());
        let signed = sign_request(
            &profile(),
            &url::Url::parse("http://127.0.0.1:8333/lake/wh/ns/t1/a").unwrap(),
            &request("GET", "http://127.0.0.1:8333/lake/wh/ns/t1/a"),
        )
        .unwrap();
        assert!(
            signed.headers["authorization"][0].starts_with("AWS4-HMAC-SHA256 Credential=AKID/")
        );
        assert_eq!(
            signed.headers["x-amz-content-sha256"],
            vec!["UNSIGNED-PAYLOAD"]
        );
    }

    #[test]
    fn requests_outside_the_table_are_refused() {
        let rw = Access::ReadWrite;
        for (method, uri) in [
            ("GET", "http://127.0.0.1:8333/lake/wh/ns/t2/data/a.parquet"),
            ("GET", "http://127.0.0.1:8333/lake/wh/ns/t1"),
            ("GET", "http://127.0.0.1:8333/lake/wh/ns/t10/a"),
            ("GET", "http://127.0.0.1:8333/other/wh/ns/t1/a"),
            ("GET", "http://127.0.0.1:9999/lake/wh/ns/t1/a"),
            ("GET", "http://evil.example/lake/wh/ns/t1/a"),
            ("POST", "http://127.0.0.1:8333/lake?delete"),
            (
                "GET",
                "http://127.0.0.1:8333/lake?list-type=2&prefix=wh/ns/",
            ),
            ("GET", "http://127.0.0.1:8333/lake?list-type=2"),
            ("PUT", "http://127.0.0.1:8333/lake/wh/ns/t1/a?acl"),
            ("GET", "http://127.0.0.1:8333/lake/wh/ns/t1/..%2Ft2/a"),
        ] {
            assert!(check(rw, method, uri).is_err(), "{method} {uri}");
        }
        assert!(check(Access::Read, "PUT", "http://127.0.0.1:8333/lake/wh/ns/t1/a").is_err());
        // A PUT inside the table that copies another table's object, or sets an ACL.
        let table = Location::parse("s3://lake/wh/ns/t1").unwrap();
        for (name, value) in [
            ("X-Amz-Copy-Source", "/lake/wh/ns/t2/a"),
            ("x-amz-acl", "public-read"),
            ("x-amz-grant-read", "uri=x"),
        ] {
            let mut put = request("PUT", "http://127.0.0.1:8333/lake/wh/ns/t1/a");
            put.headers.insert(name.into(), vec![value.into()]);
            assert!(check_scope(&profile(), &table, rw, &put).is_err(), "{name}");
        }
        assert!(check(rw, "PATCH", "http://127.0.0.1:8333/lake/wh/ns/t1/a").is_err());
    }

    fn batch_delete(body: &str) -> SignRequest {
        let mut delete = request("POST", "http://127.0.0.1:8333/lake?delete");
        delete.body = Some(body.into());
        delete
    }

    #[test]
    fn batch_deletes_are_checked_key_by_key() {
        let table = Location::parse("s3://lake/wh/ns/t1").unwrap();
        let rw = Access::ReadWrite;
        let check = |body: &str| check_scope(&profile(), &table, rw, &batch_delete(body));
        let ok = r#"<?xml version="1.0" encoding="UTF-8"?>
            <Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <Object><Key>wh/ns/t1/data/a&amp;b.parquet</Key></Object>
              <Object><Key><![CDATA[wh/ns/t1/metadata/x.avro]]></Key><VersionId>v1</VersionId></Object>
              <Quiet>true</Quiet>
            </Delete>"#;
        assert!(check(ok).is_ok());
        assert_eq!(
            delete_keys(&batch_delete(ok)).unwrap(),
            ["wh/ns/t1/data/a&b.parquet", "wh/ns/t1/metadata/x.avro"]
        );
        // A key of another table, or a dot segment: refused like a single key.
        for body in [
            "<Delete><Object><Key>wh/ns/t1/a</Key></Object><Object><Key>wh/ns/t2/a</Key></Object></Delete>",
            "<Delete><Object><Key>wh/ns/t1/../t2/a</Key></Object></Delete>",
            "<Delete><Object><Key>wh/ns/t1/a&#10;b</Key></Object></Delete>",
        ] {
            assert!(matches!(check(body), Err(SignError::Refused(_))), "{body}");
        }
        // What another reader could read differently: invalid.
        for body in [
            "<Delete><Object><Key>wh/ns/t1/a</Key><Key>wh/ns/t2/a</Key></Object></Delete>",
            "<Delete><Object><x:Key xmlns:x=\"y\">wh/ns/t2/a</x:Key></Object></Delete>",
            "<!DOCTYPE d [<!ENTITY k \"wh/ns/t2/a\">]><Delete><Object><Key>&k;</Key></Object></Delete>",
            "<Delete><Object><Key>wh/ns/t1/a</Key></Object>text</Delete>",
            "<Delete><Object><VersionId>1</VersionId></Object></Delete>",
            "<Delete></Delete>",
            "<Delete><Object><Key>wh/ns/t1/a</Key></Object>",
            "<Delete><Object><Key>wh/ns/t1/a</Key></Object></Delete><Delete/>",
            "not xml",
        ] {
            assert!(matches!(check(body), Err(SignError::Invalid(_))), "{body}");
        }
        // No body: refused; a body too large: invalid.
        let no_body = request("POST", "http://127.0.0.1:8333/lake?delete");
        assert!(matches!(
            check_scope(&profile(), &table, rw, &no_body),
            Err(SignError::Refused(_))
        ));
        let big = format!(
            "<Delete>{}</Delete>",
            "<Object><Key>wh/ns/t1/a</Key></Object>".repeat(1_001)
        );
        assert!(matches!(check(&big), Err(SignError::Invalid(_))));
        assert!(check_scope(&profile(), &table, Access::Read, &batch_delete(ok)).is_err());
    }

    #[test]
    fn a_batch_delete_signature_binds_its_body_and_checksums() {
        let body = "<Delete><Object><Key>wh/ns/t1/a</Key></Object></Delete>";
        let uri = url::Url::parse("http://127.0.0.1:8333/lake?delete").unwrap();
        let mut delete = batch_delete(body);
        let sha256 = hex::encode(sha2::Sha256::digest(body.as_bytes()));
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body));
        delete.headers.insert("Content-MD5".into(), vec![md5]);
        let mut crc = aws_smithy_checksums::ChecksumAlgorithm::Crc32.into_impl();
        crc.update(body.as_bytes());
        let crc = crc.header_value().to_str().unwrap().to_owned();
        delete
            .headers
            .insert("x-amz-checksum-crc32".into(), vec![crc]);
        let signed = sign_request(&profile(), &uri, &delete).unwrap();
        assert_eq!(signed.headers["x-amz-content-sha256"], vec![sha256]);
        let authorization = &signed.headers["authorization"][0];
        assert!(
            authorization.contains("SignedHeaders=content-md5;host;x-amz-checksum-crc32;"),
            "{authorization}"
        );
        // Checksums of another body: invalid.
        for name in [
            "Content-MD5",
            "x-amz-checksum-crc32",
            "x-amz-content-sha256",
        ] {
            let mut wrong = delete.clone();
            let value = if name == "x-amz-content-sha256" {
                "0".repeat(64)
            } else {
                "AAAAAA==".into()
            };
            wrong.headers.insert(name.into(), vec![value]);
            assert!(
                matches!(
                    sign_request(&profile(), &uri, &wrong),
                    Err(SignError::Invalid(_))
                ),
                "{name}"
            );
        }
        // A chunk-signed payload cannot be signed remotely; a client's unsigned one is kept.
        let put_uri = url::Url::parse("http://127.0.0.1:8333/lake/wh/ns/t1/a").unwrap();
        let mut put = request("PUT", put_uri.as_str());
        put.headers.insert(
            "x-amz-content-sha256".into(),
            vec!["STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into()],
        );
        assert!(sign_request(&profile(), &put_uri, &put).is_err());
        put.headers.insert(
            "x-amz-content-sha256".into(),
            vec!["STREAMING-UNSIGNED-PAYLOAD-TRAILER".into()],
        );
        let signed = sign_request(&profile(), &put_uri, &put).unwrap();
        assert_eq!(
            signed.headers["x-amz-content-sha256"],
            vec!["STREAMING-UNSIGNED-PAYLOAD-TRAILER"]
        );
    }

    #[test]
    fn candidate_locations_read_both_addressing_styles() {
        let get = request("GET", "http://127.0.0.1:8333/lake/wh/ns/t1/a%20b");
        assert_eq!(candidate_locations(&get)[0], "s3://lake/wh/ns/t1/a b");
        let virtual_hosted = request("GET", "http://lake.s3.local/wh/ns/t1/a");
        assert!(candidate_locations(&virtual_hosted).contains(&"s3://lake/wh/ns/t1/a".to_owned()));
        let listing = request(
            "GET",
            "http://127.0.0.1:8333/lake?list-type=2&prefix=wh/ns/t1/",
        );
        assert_eq!(candidate_locations(&listing)[0], "s3://lake/wh/ns/t1");
        let delete = batch_delete("<Delete><Object><Key>wh/ns/t1/a</Key></Object></Delete>");
        assert_eq!(candidate_locations(&delete)[0], "s3://lake/wh/ns/t1/a");
    }
}
