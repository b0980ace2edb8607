use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::common::{Backend, TestApp};

async fn bad_input_gets_the_error_model(backend: Backend) {
    let app = TestApp::spawn_with(backend, &["--max-body-bytes", "65536"]).await;
    app.create_namespace(&["e"]).await;

    let raw = |method: Method, path: &str, body: &'static str| {
        let req = app
            .client
            .request(method, app.url(path))
            .header("content-type", "application/json")
            .body(body);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status();
            let text = r.text().await.unwrap();
            (status, text)
        }
    };
    let check = |(status, text): (StatusCode, String), expected: StatusCode, kind: &str| {
        assert_eq!(status, expected, "{text}");
        let body: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        assert_eq!(body["error"]["type"], kind, "{text}");
        assert_eq!(body["error"]["code"], expected.as_u16());
        body["error"]["message"].as_str().unwrap().to_owned()
    };

    let m = check(
        raw(Method::POST, "/v1/namespaces", "{not json").await,
        StatusCode::BAD_REQUEST,
        "BadRequestException",
    );
    assert!(m.contains("malformed"), "{m}");
    let m = check(
        raw(Method::POST, "/v1/namespaces", "{\"namespace\": 5}").await,
        StatusCode::BAD_REQUEST,
        "BadRequestException",
    );
    assert!(m.contains("namespace"), "the message names the field: {m}");
    check(
        raw(Method::POST, "/v1/namespaces", "").await,
        StatusCode::BAD_REQUEST,
        "BadRequestException",
    );
    // An array in place of the request object (found by schemathesis).
    check(
        raw(Method::POST, "/v1/namespaces", "[[\"arr\"]]").await,
        StatusCode::BAD_REQUEST,
        "BadRequestException",
    );
    check(
        raw(Method::POST, "/v1/namespaces", "{\"namespace\": []}").await,
        StatusCode::BAD_REQUEST,
        "BadRequestException",
    );
    check(
        raw(Method::POST, "/v1/namespaces", "{\"namespace\": [\"\"]}").await,
        StatusCode::BAD_REQUEST,
        "BadRequestException",
    );
    check(
        raw(
            Method::POST,
            "/v1/namespaces",
            "{\"namespace\": [\"a\\u0001b\"]}",
        )
        .await,
        StatusCode::BAD_REQUEST,
        "BadRequestException",
    );
    check(
        raw(Method::POST, "/v1/namespaces/e/tables", "{\"name\": \"t\"}").await,
        StatusCode::BAD_REQUEST,
        "BadRequestException",
    );
    check(
        raw(
            Method::POST,
            "/v1/namespaces/e/tables",
            "{\"name\": \"a/b\", \"schema\": {\"type\": \"struct\", \"fields\": []}}",
        )
        .await,
        StatusCode::BAD_REQUEST,
        "BadRequestException",
    );
    check(
        raw(Method::POST, "/v1/namespaces/e/tables", "{\"name\": \"t\", \"schema\": {\"type\": \"struct\", \"fields\": []}, \"properties\": {\"format-version\": \"9\"}}").await,
        StatusCode::BAD_REQUEST,
        "BadRequestException",
    );
    check(
        raw(Method::POST, "/v1/namespaces/e/tables", "{\"name\": \"t\", \"location\": \"ftp://x/y\", \"schema\": {\"type\": \"struct\", \"fields\": []}}").await,
        StatusCode::BAD_REQUEST,
        "BadRequestException",
    );
    check(
        raw(Method::GET, "/v1/namespaces/a%1F%1Fb", "").await,
        StatusCode::BAD_REQUEST,
        "BadRequestException",
    );

    // Oversized bodies.
    let big = format!(
        "{{\"namespace\": [\"x\"], \"properties\": {{\"p\": \"{}\"}}}}",
        "x".repeat(100_000)
    );
    let r = app
        .client
        .post(app.url("/v1/namespaces"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    let status = r.status();
    check(
        (status, r.text().await.unwrap()),
        StatusCode::PAYLOAD_TOO_LARGE,
        "PayloadTooLargeException",
    );

    // Unknown routes and methods.
    check(
        raw(Method::GET, "/v1/nothing/here/at/all", "").await,
        StatusCode::NOT_FOUND,
        "NoSuchRouteException",
    );
    check(
        raw(Method::PUT, "/v1/namespaces", "{}").await,
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowedException",
    );

    // A bad idempotency key.
    let r = app
        .request_with(
            Method::POST,
            "/v1/namespaces",
            Some(&json!({"namespace": ["k"]})),
            &[("Idempotency-Key", "not-a-uuid")],
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "BadRequestException");

    // Nothing of the above created anything.
    let listed = app.get("/v1/namespaces").await.json();
    assert_eq!(listed["namespaces"], json!([["e"]]));
    let tables = app.get("/v1/namespaces/e/tables").await.json();
    assert_eq!(tables["identifiers"], json!([]));

    // Health and readiness.
    assert_eq!(app.get("/health").await.status, StatusCode::OK);
    assert_eq!(app.get("/ready").await.status, StatusCode::OK);
}

both_backends!(bad_input_gets_the_error_model);
