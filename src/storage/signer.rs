//! Remote signing: clients send the S3 request they are about to make (method, URI,
//! headers, never the payload), and Serac signs it with the profile's keys (SigV4,
//! `UNSIGNED-PAYLOAD`) when it stays inside one table's location.
//!
//! The scope check is strict: the request must go to the profile's endpoint (path-style or
//! virtual-hosted), to the table's bucket, and either to an object below the table's
//! location, or be a listing of the bucket whose `prefix` lies within the table. Sub-resources
//! other than multipart uploads and versions (ACLs, policies, tagging, `?delete` batch
//! deletes whose keys the signer cannot see) are refused.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;

use super::credentials::Access;
use super::location::Location;
use super::profile::S3Profile;

/// A request to sign, as clients send it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct SignRequest {
    pub method: String,
    pub region: String,
    pub uri: String,
    #[serde(default)]
    pub headers: BTreeMap<String, Vec<String>>,
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
    let within = |k: &str| k.starts_with(prefix) && k.as_bytes().get(prefix.len()) == Some(&b'/');
    let query: Vec<(String, String)> = uri.query_pairs().into_owned().collect();
    if key.is_empty() {
        // The bucket itself: only a listing below the table.
        let listed = query
            .iter()
            .find(|(k, _)| k == "prefix")
            .map(|(_, v)| v.as_str());
        let prefix_ok = listed.is_some_and(|p| p == prefix || within(p));
        if needed != Access::Read
            || !prefix_ok
            || query.iter().any(|(k, _)| !LIST_QUERY.contains(&k.as_str()))
        {
            return Err(SignError::Refused(
                "only listings below the table's location are signed on the bucket (no batch deletes)"
                    .into(),
            ));
        }
        return Ok(uri);
    }
    if !within(&key)
        || key
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(SignError::Refused(format!(
            "'{}' lies outside the table's location",
            key.escape_debug()
        )));
    }
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
    // What is signed: the host and every `x-amz-*` header the client sends (S3 refuses
    // unsigned ones), but not the ones the signature sets itself. Other headers stay
    // unsigned: they cannot widen what the request reaches.
    let signed: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.join(",")))
        .filter(|(name, _)| {
            name.starts_with("x-amz-")
                && !matches!(
                    name.as_str(),
                    "x-amz-date" | "x-amz-content-sha256" | "x-amz-security-token"
                )
        })
        .collect();
    let signable = SignableRequest::new(
        request.method.as_str(),
        uri.as_str(),
        signed.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::UnsignedPayload,
    )
    .map_err(|e| SignError::Invalid(format!("the request cannot be signed: {e}")))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| SignError::Invalid(format!("signing failed: {e}")))?
        .into_parts();
    // The answer holds the headers the signature adds; the client keeps its own (PyIceberg
    // appends what it gets, so repeating a signed header would send it twice).
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
            headers: BTreeMap::new(),
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
}
