use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, TestApp, add_one_function};

async fn functions_are_created_listed_and_loaded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["fns"]).await;
    let create = |name: &str, metadata: Value| json!({"name": name, "metadata": metadata});
    let url = "/management/v1/warehouses/default/namespaces/fns/functions";
    let r = app.post(url, &create("add_one", add_one_function())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let created = r.json();
    let location = created["metadata-location"].as_str().unwrap().to_owned();
    assert!(std::path::Path::new(location.strip_prefix("file://").unwrap()).exists());
    assert!(
        created["metadata"]["location"]
            .as_str()
            .unwrap()
            .starts_with("file://")
    );

    app.post(url, &create("add_one", add_one_function()))
        .await
        .assert_error(StatusCode::CONFLICT, "AlreadyExistsException");
    let mut invalid = add_one_function();
    invalid["definitions"][0]["current-version-id"] = json!(9);
    let message = app
        .post(url, &create("bad", invalid))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    assert!(message.contains("current-version-id"), "{message}");
    app.post(url, &create("bad", json!({"format-version": 1})))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    app.post(
        "/management/v1/warehouses/default/namespaces/nope/functions",
        &create("f", add_one_function()),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "NoSuchNamespaceException");

    let listed = app.get("/v1/namespaces/fns/functions").await.json();
    assert_eq!(listed["identifiers"], json!([["fns", "add_one"]]));
    let loaded = app.get("/v1/namespaces/fns/functions/add_one").await.json();
    assert_eq!(loaded["metadata-location"], location.as_str());
    assert_eq!(loaded["metadata"]["properties"]["owner"], "ana");
    app.get("/v1/namespaces/fns/functions/nope")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchFunctionException");
    app.get("/v1/namespaces/nope/functions/x")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchNamespaceException");
    app.get("/v1/namespaces/nope/functions")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchNamespaceException");
    // A function may share a name with a table.
    app.create_table("fns", "add_one", json!({})).await;

    // The CLI validates and creates too.
    let file = app.dir.path().join("f.json");
    std::fs::write(&file, add_one_function().to_string()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_serac"))
        .args([
            "function",
            "create",
            "from_cli",
            "--namespace",
            "fns",
            "--database-url",
            &app.database_url,
        ])
        .arg("--file")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = app.get("/v1/namespaces/fns/functions").await.json();
    assert_eq!(
        listed["identifiers"],
        json!([["fns", "add_one"], ["fns", "from_cli"]])
    );
    std::fs::write(&file, "{\"format-version\": 3}").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_serac"))
        .args([
            "function",
            "create",
            "worse",
            "--namespace",
            "fns",
            "--database-url",
            &app.database_url,
        ])
        .arg("--file")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid function metadata"));
}

both_backends!(functions_are_created_listed_and_loaded);
