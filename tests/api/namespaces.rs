use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, TestApp};

async fn namespace_lifecycle(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = app
        .post(
            "/v1/namespaces",
            &json!({"namespace": ["sales"], "properties": {"owner": "ana"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.json(),
        json!({"namespace": ["sales"], "properties": {"owner": "ana"}})
    );

    // Missing `properties` is accepted (the spec defaults it).
    let r = app
        .post("/v1/namespaces", &json!({"namespace": ["bare"]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    app.post("/v1/namespaces", &json!({"namespace": ["sales"]}))
        .await
        .assert_error(StatusCode::CONFLICT, "AlreadyExistsException");

    let r = app.get("/v1/namespaces/sales").await;
    assert_eq!(r.json()["properties"]["owner"], "ana");
    assert_eq!(
        app.head("/v1/namespaces/sales").await.status,
        StatusCode::NO_CONTENT
    );
    let r = app.head("/v1/namespaces/nope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    app.get("/v1/namespaces/nope")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchNamespaceException");

    // Hierarchy: a child needs its parent; children are listed under their parent.
    app.post("/v1/namespaces", &json!({"namespace": ["sales", "eu"]}))
        .await;
    app.post(
        "/v1/namespaces",
        &json!({"namespace": ["sales", "eu", "de"]}),
    )
    .await;
    // Like the Java reference's JDBC catalog, where a namespace exists once one below it
    // does: creating a child of a missing parent makes the parent (without properties), so it
    // is listed from the top, loads, cannot be created again and cannot be dropped first.
    let r = app
        .post(
            "/v1/namespaces",
            &json!({"namespace": ["ghost", "mid", "child"], "properties": {"k": "v"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let top = app.get("/v1/namespaces").await.json();
    assert_eq!(top["namespaces"], json!([["bare"], ["ghost"], ["sales"]]));
    let r = app.get("/v1/namespaces/ghost%1Fmid").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let made = r.json();
    assert!(
        made["properties"].is_null() || made["properties"] == json!({}),
        "{made}"
    );
    let r = app.get("/v1/namespaces/ghost%1Fmid%1Fchild").await;
    assert_eq!(r.json()["properties"], json!({"k": "v"}));
    let listed = app.get("/v1/namespaces?parent=ghost").await.json();
    assert_eq!(listed["namespaces"], json!([["ghost", "mid"]]));
    app.post("/v1/namespaces", &json!({"namespace": ["ghost"]}))
        .await
        .assert_error(StatusCode::CONFLICT, "AlreadyExistsException");
    app.delete("/v1/namespaces/ghost")
        .await
        .assert_error(StatusCode::CONFLICT, "NamespaceNotEmptyException");
    // A sibling under the now existing parents makes nothing more.
    app.create_namespace(&["ghost", "mid", "sibling"]).await;
    for ns in [
        "ghost%1Fmid%1Fchild",
        "ghost%1Fmid%1Fsibling",
        "ghost%1Fmid",
        "ghost",
    ] {
        let r = app.delete(&format!("/v1/namespaces/{ns}")).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{ns}: {}", r.text);
    }
    let children = app.get("/v1/namespaces?parent=sales").await.json();
    assert_eq!(children["namespaces"], json!([["sales", "eu"]]));
    let grandchildren = app.get("/v1/namespaces?parent=sales%1Feu").await.json();
    assert_eq!(grandchildren["namespaces"], json!([["sales", "eu", "de"]]));
    let r = app.get("/v1/namespaces/sales%1Feu%1Fde").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["namespace"], json!(["sales", "eu", "de"]));
    app.get("/v1/namespaces?parent=nope")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchNamespaceException");

    // Not empty: a child namespace, then a table.
    app.delete("/v1/namespaces/sales%1Feu")
        .await
        .assert_error(StatusCode::CONFLICT, "NamespaceNotEmptyException");
    assert_eq!(
        app.delete("/v1/namespaces/sales%1Feu%1Fde").await.status,
        StatusCode::NO_CONTENT
    );
    app.create_table("sales%1Feu", "orders", json!({})).await;
    app.delete("/v1/namespaces/sales%1Feu")
        .await
        .assert_error(StatusCode::CONFLICT, "NamespaceNotEmptyException");
    assert_eq!(
        app.delete("/v1/namespaces/sales%1Feu/tables/orders")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete("/v1/namespaces/sales%1Feu").await.status,
        StatusCode::NO_CONTENT
    );
    app.delete("/v1/namespaces/sales%1Feu")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchNamespaceException");
}

async fn namespace_properties(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.post(
        "/v1/namespaces",
        &json!({"namespace": ["p"], "properties": {"a": "1", "b": "2"}}),
    )
    .await;
    let r = app
        .post(
            "/v1/namespaces/p/properties",
            &json!({"removals": ["a", "zzz"], "updates": {"c": "3", "b": "22"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let body = r.json();
    let sorted = |v: &Value| {
        let mut items: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect();
        items.sort();
        items
    };
    assert_eq!(sorted(&body["updated"]), vec!["b", "c"]);
    assert_eq!(sorted(&body["removed"]), vec!["a"]);
    assert_eq!(sorted(&body["missing"]), vec!["zzz"]);
    let props = app.get("/v1/namespaces/p").await.json()["properties"].clone();
    assert_eq!(props, json!({"b": "22", "c": "3"}));

    app.post(
        "/v1/namespaces/p/properties",
        &json!({"removals": ["b"], "updates": {"b": "x"}}),
    )
    .await
    .assert_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "UnprocessableEntityException",
    );
    app.post(
        "/v1/namespaces/nope/properties",
        &json!({"updates": {"b": "x"}}),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "NoSuchNamespaceException");
    // Both fields are optional.
    let r = app.post("/v1/namespaces/p/properties", &json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn namespace_pagination(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut expected = Vec::new();
    for i in 0..25 {
        let name = format!("ns{i:02}");
        app.create_namespace(&[&name]).await;
        expected.push(name);
    }
    // Without a token: everything at once.
    let all = app.get("/v1/namespaces").await.json();
    assert_eq!(all["namespaces"].as_array().unwrap().len(), 25);
    assert!(all["next-page-token"].is_null());

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let r = app
            .get(&format!("/v1/namespaces?pageSize=10&pageToken={token}"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let body = r.json();
        pages += 1;
        for ns in body["namespaces"].as_array().unwrap() {
            seen.push(ns[0].as_str().unwrap().to_owned());
        }
        match body["next-page-token"].as_str() {
            Some(t) => token = t.to_owned(),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);
    app.get("/v1/namespaces?pageToken=%25%25bad")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    // base64url of "a\0b": a NUL never reaches the database.
    app.get("/v1/namespaces?pageToken=YQBi")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    app.get("/v1/namespaces?pageSize=0")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    app.get("/v1/namespaces?pageSize=abc")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
}

both_backends!(
    namespace_lifecycle,
    namespace_properties,
    namespace_pagination
);
