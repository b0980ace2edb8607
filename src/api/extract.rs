//! Extractors that answer bad input with the spec's error JSON instead of plain text.

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use bytes::Bytes;
use iceberg::NamespaceIdent;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::catalog::Caller;

/// A JSON body, parsed with a message that says where it is wrong.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_json(req, state).await.map(|(value, _)| Self(value))
    }
}

/// A JSON body, parsed as [`ApiJson`] does, with the bytes it was read from (as UTF-8).
pub struct ApiJsonWithBody<T>(pub T, pub Bytes);

impl<S, T> FromRequest<S> for ApiJsonWithBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_json(req, state)
            .await
            .map(|(value, bytes)| Self(value, bytes))
    }
}

async fn read_json<S, T>(req: Request, state: &S) -> Result<(T, Bytes), ApiError>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    // Refused before the body is read. A body without a type is refused too: browsers
    // send one cross-site without asking (a form, `text/plain`, a typeless blob).
    let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
    if let Some(content_type) = &content_type
        && !is_json(content_type)
    {
        return Err(unsupported_media_type(Some(content_type)));
    }
    let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
    if content_type.is_none() && !bytes.is_empty() {
        return Err(unsupported_media_type(None));
    }
    // Every request body of the API is a JSON object (serde would also accept an array
    // holding the fields in order, which the spec does not allow).
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(ApiError::bad_request(
                "the request body is empty; a JSON object is required",
            ));
        }
        Some(b'{') => {}
        Some(_) => {
            return Err(ApiError::bad_request(
                "malformed request body: a JSON object is required",
            ));
        }
    }
    let bytes = utf8_or_latin1(bytes, content_type.as_ref());
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ApiError::bad_request(format!("malformed request body: {inner}"))
        } else {
            ApiError::bad_request(format!("malformed request body at '{path}': {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("malformed request body: {e}")))?;
    Ok((value, bytes))
}

/// The body as UTF-8. JSON is UTF-8, but Iceberg's Java client (Spark, Trino, Flink) sends
/// its bodies in ISO-8859-1 when they hold a non-ASCII character (its HTTP entity is built
/// without a charset), and the Java reference server reads them so: a body that is not valid
/// UTF-8 and declares no other charset is read as ISO-8859-1, in which every byte is a
/// character. Valid UTF-8 is taken as it is.
fn utf8_or_latin1(bytes: Bytes, content_type: Option<&HeaderValue>) -> Bytes {
    if std::str::from_utf8(&bytes).is_ok() {
        return bytes;
    }
    let declared = content_type.and_then(|v| v.to_str().ok()).and_then(|v| {
        v.split(';')
            .skip(1)
            .find_map(|p| p.trim().strip_prefix("charset="))
            .map(|c| c.trim_matches('"').to_ascii_lowercase())
    });
    match declared.as_deref() {
        None | Some("iso-8859-1" | "latin1" | "latin-1") => {
            Bytes::from(bytes.iter().map(|&b| b as char).collect::<String>())
        }
        Some(_) => bytes,
    }
}

/// Whether a `Content-Type` is `application/json` (any case, parameters allowed).
fn is_json(content_type: &HeaderValue) -> bool {
    content_type
        .to_str()
        .ok()
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

fn unsupported_media_type(got: Option<&HeaderValue>) -> ApiError {
    let got = match got {
        Some(value) => {
            let value = String::from_utf8_lossy(value.as_bytes());
            let shown: String = value.chars().take(100).collect();
            format!("Content-Type '{}'", shown.escape_debug())
        }
        None => "no Content-Type".to_owned(),
    };
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaTypeException",
        format!("the request body has {got}; it must be sent as Content-Type 'application/json'"),
    )
}

fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            "the request body is larger than this server accepts",
        );
    }
    ApiError::bad_request(format!(
        "the request body could not be read: {}",
        rejection.body_text()
    ))
}

/// The caller of a request, as the request middleware found it (see `record_request`).
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::from(crate::catalog::CatalogError::Internal(
                "the request reached its handler without a caller".into(),
            ))
        })
    }
}

/// Path parameters, decoded.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| Self(v))
            .map_err(|e| ApiError::bad_request(format!("invalid path: {}", e.body_text())))
    }
}

/// Query parameters.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Self(v))
            .map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))
    }
}

/// A namespace from a path segment or the `parent` parameter: levels joined by 0x1F.
pub fn parse_namespace(raw: &str) -> Result<NamespaceIdent, ApiError> {
    if raw.is_empty() {
        // Java clients probe `<namespace>.<table>` as a metadata table of a table in the
        // empty namespace: that is a missing object, not a bad request.
        return Err(ApiError::not_found(
            "NoSuchNamespaceException",
            "the empty namespace does not exist",
        ));
    }
    let levels: Vec<String> = raw.split('\u{1F}').map(str::to_owned).collect();
    if levels.iter().any(String::is_empty) {
        return Err(ApiError::bad_request(format!(
            "namespace '{}' has an empty level",
            raw.escape_debug()
        )));
    }
    NamespaceIdent::from_vec(levels).map_err(|e| ApiError::bad_request(e.to_string()))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=UTF-8",
            " application/json ",
        ] {
            assert!(super::is_json(&HeaderValue::from_static(ok)), "{ok}");
        }
        for refused in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "application/json-seq",
            "text/json",
            "",
        ] {
            assert!(
                !super::is_json(&HeaderValue::from_static(refused)),
                "{refused}"
            );
        }
    }
}

/// Java clients (Spark, Trino, Flink) escape names in the path with form encoding, a space as
/// `+`; the Java reference server decodes it so, and PyIceberg sends `%20` for a space and
/// `%2B` for a plus. So a `+` in the path is a space: it is rewritten to `%20` before routing.
pub fn plus_as_space(uri: &mut axum::http::Uri) {
    if !uri.path().contains('+') {
        return;
    }
    let path = uri.path().replace('+', "%20");
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let mut parts = uri.clone().into_parts();
    match path_and_query.parse() {
        Ok(pq) => parts.path_and_query = Some(pq),
        Err(_) => return,
    }
    if let Ok(rewritten) = axum::http::Uri::from_parts(parts) {
        *uri = rewritten;
    }
}

#[cfg(test)]
mod encoding_tests {
    use axum::http::HeaderValue;
    use bytes::Bytes;

    #[test]
    fn latin1_bodies_of_java_clients_are_read_as_such() {
        let json = HeaderValue::from_static("application/json");
        let latin1 = Bytes::from_static(b"{\"name\":\"\xfcn\xef\"}");
        let read = super::utf8_or_latin1(latin1, Some(&json));
        assert_eq!(std::str::from_utf8(&read).unwrap(), "{\"name\":\"ünï\"}");
        let utf8 = Bytes::from("{\"name\":\"ünï ☃\"}");
        assert_eq!(super::utf8_or_latin1(utf8.clone(), Some(&json)), utf8);
        let declared = HeaderValue::from_static("application/json; charset=utf-8");
        let broken = Bytes::from_static(b"{\"name\":\"\xfc\"}");
        assert_eq!(
            super::utf8_or_latin1(broken.clone(), Some(&declared)),
            broken
        );
    }

    #[test]
    fn plus_in_the_path_is_a_space() {
        let mut uri: axum::http::Uri = "/v1/namespaces/a+b/tables/sp+ace%2Bx?pageToken=a+b"
            .parse()
            .unwrap();
        super::plus_as_space(&mut uri);
        assert_eq!(
            uri.to_string(),
            "/v1/namespaces/a%20b/tables/sp%20ace%2Bx?pageToken=a+b"
        );
    }
}
