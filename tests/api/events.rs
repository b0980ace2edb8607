//! The change feed: an event for every committed change and none for anything else, in order,
//! with filters, resumable cursors, retention, close frames, and across replicas.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::both_backends;
use crate::common::{Backend, TestApp, assert_no_event, next_event, next_events};

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn cursor(event: &Value) -> String {
    event["cursor"].as_str().expect("cursor").to_owned()
}

async fn every_change_is_an_event_in_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut feed = app.feed("").await;
    let r = app
        .request_with(
            Method::POST,
            "/v1/namespaces",
            Some(&json!({"namespace": ["feed"], "properties": {"a": "1"}})),
            &[("x-request-id", "req-feed-1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let created = app.create_table("feed", "t", json!({})).await;
    assert_eq!(
        app.append_snapshot("feed", "t", &created["metadata"])
            .await
            .status,
        StatusCode::OK
    );
    let r = app
        .post(
            "/v1/tables/rename",
            &json!({"source": {"namespace": ["feed"], "name": "t"},
                    "destination": {"namespace": ["feed"], "name": "t2"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = app
        .post(
            "/v1/namespaces/feed/properties",
            &json!({"updates": {"b": "2"}, "removals": ["a"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        app.delete("/v1/namespaces/feed/tables/t2").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete("/v1/namespaces/feed").await.status,
        StatusCode::NO_CONTENT
    );

    let events = next_events(&mut feed, 7).await;
    assert_eq!(
        types(&events),
        [
            "namespace.created",
            "table.created",
            "table.updated",
            "table.renamed",
            "namespace.updated",
            "table.dropped",
            "namespace.dropped"
        ]
    );
    let first = &events[0];
    assert_eq!(first["warehouse"], "default");
    assert_eq!(first["namespace"], json!(["feed"]));
    assert_eq!(first["request-id"], "req-feed-1");
    assert_eq!(first["actor"], "anonymous");
    assert_eq!(first["data"]["properties"]["a"], "1");
    assert_eq!(events[1]["name"], "t");
    let update = &events[2]["data"];
    assert_eq!(
        update["previous-metadata-location"],
        created["metadata-location"]
    );
    assert_eq!(
        update["actions"],
        json!(["add-snapshot", "set-snapshot-ref"])
    );
    assert_eq!(
        events[3]["data"]["destination"],
        json!({"namespace": ["feed"], "name": "t2"})
    );
    assert_eq!(events[4]["data"]["updated"], json!(["b"]));
    assert_eq!(events[4]["data"]["removed"], json!(["a"]));
    assert_eq!(events[5]["name"], "t2");
    let cursors: Vec<String> = events.iter().map(cursor).collect();
    let unique: HashSet<&String> = cursors.iter().collect();
    assert_eq!(unique.len(), cursors.len(), "cursors repeat: {cursors:?}");
    assert_no_event(&mut feed, Duration::from_millis(300)).await;

    // A nested namespace whose parents are missing makes them, each with its event, top first.
    app.create_namespace(&["deep", "er", "est"]).await;
    let events = next_events(&mut feed, 3).await;
    let made: Vec<&Value> = events.iter().map(|e| &e["namespace"]).collect();
    assert_eq!(
        made,
        [
            &json!(["deep"]),
            &json!(["deep", "er"]),
            &json!(["deep", "er", "est"])
        ]
    );
    assert_eq!(types(&events), ["namespace.created"; 3]);
    assert_eq!(events[0]["data"]["properties"], json!({}));
    app.create_namespace(&["deep", "er", "other"]).await;
    let events = next_events(&mut feed, 1).await;
    assert_eq!(events[0]["namespace"], json!(["deep", "er", "other"]));
    assert_no_event(&mut feed, Duration::from_millis(300)).await;
}

async fn failed_and_replayed_changes_have_no_event(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["quiet"]).await;
    let created = app.create_table("quiet", "t", json!({})).await;
    let mut feed = app.feed("").await;
    // A stale requirement (409), a missing table (404), an invalid update (400).
    assert_eq!(
        app.append_snapshot("quiet", "t", &created["metadata"])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.append_snapshot("quiet", "t", &created["metadata"])
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.delete("/v1/namespaces/quiet/tables/nope").await.status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .post(
            "/v1/namespaces/quiet/tables/t",
            &json!({"requirements": [], "updates": [{"action": "set-current-schema", "schema-id": 99}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // A crash between the metadata file and the row swap.
    app.catalog().fail_next_swap();
    let r = app
        .post(
            "/v1/namespaces/quiet/tables/t",
            &json!({"requirements": [], "updates": [{"action": "set-properties", "updates": {"x": "1"}}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text);
    // An idempotent retry of a create: one change, one event.
    let key = ("idempotency-key", "6f0d3c1e-2b7a-4c55-9e8f-0a1b2c3d4e5f");
    for _ in 0..2 {
        let r = app
            .request_with(
                Method::POST,
                "/v1/namespaces",
                Some(&json!({"namespace": ["quiet2"]})),
                &[key],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let events = next_events(&mut feed, 2).await;
    assert_eq!(types(&events), ["table.updated", "namespace.created"]);
    assert_no_event(&mut feed, Duration::from_millis(300)).await;
}

async fn resuming_with_a_cursor_skips_and_repeats_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut feed = app.feed("").await;
    for i in 0..5 {
        app.create_namespace(&[&format!("r{i}")]).await;
    }
    let seen = next_events(&mut feed, 2).await;
    drop(feed);
    for i in 5..8 {
        app.create_namespace(&[&format!("r{i}")]).await;
    }
    let mut feed = app.feed(&format!("cursor={}", cursor(&seen[1]))).await;
    let rest = next_events(&mut feed, 6).await;
    let names: Vec<&str> = rest
        .iter()
        .map(|e| e["namespace"][0].as_str().unwrap())
        .collect();
    assert_eq!(names, ["r2", "r3", "r4", "r5", "r6", "r7"]);
    assert_no_event(&mut feed, Duration::from_millis(300)).await;

    // Resuming from the very first event replays everything after it, in the same order.
    let mut again = app.feed(&format!("cursor={}", cursor(&seen[0]))).await;
    let replay = next_events(&mut again, 7).await;
    assert_eq!(cursor(&replay[1]), cursor(&rest[0]));
    assert_eq!(cursor(&replay[6]), cursor(&rest[5]));
}

async fn filters_select_events(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = app
        .post("/management/v1/warehouses", &json!({"name": "second", "location": format!("file://{}/second", app.dir.path().display())}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let mut tables = app.feed("types=table").await;
    let mut updates = app.feed("types=table.updated,view").await;
    let mut in_a = app.feed("namespace=a").await;
    let mut named = app.feed("table=t1").await;
    let mut second = app.feed("warehouse=second").await;
    app.create_namespace(&["a"]).await;
    app.create_namespace(&["a", "b"]).await;
    app.create_namespace(&["c"]).await;
    let t1 = app.create_table("a%1Fb", "t1", json!({})).await;
    app.create_table("c", "t2", json!({})).await;
    assert_eq!(
        app.append_snapshot("a%1Fb", "t1", &t1["metadata"])
            .await
            .status,
        StatusCode::OK
    );
    let r = app
        .post("/v1/second/namespaces", &json!({"namespace": ["s"]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let e = next_events(&mut tables, 3).await;
    assert_eq!(
        types(&e),
        ["table.created", "table.created", "table.updated"]
    );
    let e = next_event(&mut updates).await;
    assert_eq!(
        (e["type"].as_str(), e["name"].as_str()),
        (Some("table.updated"), Some("t1"))
    );
    let e = next_events(&mut in_a, 4).await;
    assert_eq!(
        types(&e),
        [
            "namespace.created",
            "namespace.created",
            "table.created",
            "table.updated"
        ]
    );
    let e = next_events(&mut named, 2).await;
    assert_eq!(types(&e), ["table.created", "table.updated"]);
    let e = next_event(&mut second).await;
    assert_eq!(
        (e["type"].as_str(), e["warehouse"].as_str()),
        (Some("namespace.created"), Some("second"))
    );
    for feed in [
        &mut tables,
        &mut updates,
        &mut in_a,
        &mut named,
        &mut second,
    ] {
        assert_no_event(feed, Duration::from_millis(200)).await;
    }

    // Bad subscriptions are refused with the error model before the upgrade.
    app.get("/v1/events/stream?types=tables")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    app.get("/v1/events/stream?cursor=abc")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    app.get("/v1/events/stream?warehouse=nope")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchWarehouseException");
    app.get("/v1/events/stream?colour=red")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    let m = app
        .get("/v1/events/stream")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    assert!(m.contains("WebSocket"), "{m}");
}

async fn retention_deletes_old_events_and_expires_cursors(backend: Backend) {
    let app = TestApp::spawn_with(backend, &["--event-retention", "1s"]).await;
    let mut feed = app.feed("").await;
    app.create_namespace(&["old"]).await;
    let old = next_event(&mut feed).await;
    // The cleanup runs every second; after it, the old cursor cannot be resumed.
    let mut expired = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.create_namespace(&[&crate::common::unique("new")]).await;
        let r = app
            .get(&format!("/v1/events/stream?cursor={}", cursor(&old)))
            .await;
        if r.status == StatusCode::GONE {
            let m = r.assert_error(StatusCode::GONE, "CursorExpiredException");
            assert!(m.contains("retention"), "{m}");
            expired = true;
            break;
        }
    }
    assert!(expired, "events past retention were never deleted");
}

async fn subscribers_get_a_close_frame_on_shutdown(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut feed = app.feed("").await;
    let metrics = app.get("/metrics").await.text;
    assert!(
        metrics.contains("serac_change_feed_subscribers 1"),
        "{metrics}"
    );
    let stopping = tokio::spawn(app.stop());
    let frame = loop {
        match tokio::time::timeout(Duration::from_secs(15), feed.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let frame = frame.expect("a close frame with a code");
    assert_eq!(u16::from(frame.code), 1001, "{frame:?}");
    stopping.await.expect("server stopped");
}

both_backends!(
    every_change_is_an_event_in_order,
    failed_and_replayed_changes_have_no_event,
    resuming_with_a_cursor_skips_and_repeats_nothing,
    filters_select_events,
    retention_deletes_old_events_and_expires_cursors,
    subscribers_get_a_close_frame_on_shutdown,
);

/// Two replicas on one PostgreSQL database: a subscriber on either sees every change made
/// through both, in the same order. Replica B never polls (its poll interval is an hour), so
/// what it sees reached it through LISTEN/NOTIFY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_is_complete_on_both_replicas() {
    let a = TestApp::spawn(Backend::Postgres).await;
    let dir_b = tempfile::tempdir().unwrap();
    let b = TestApp::spawn_on(
        Backend::Postgres,
        dir_b,
        a.database_url.clone(),
        &[
            "--event-poll-interval",
            "1h",
            "--warehouse-location",
            &format!("file://{}", a.warehouse_dir().display()),
        ],
    )
    .await;
    let mut feed_a = a.feed("types=table.updated").await;
    let mut feed_b = b.feed("types=table.updated").await;
    a.create_namespace(&["rep"]).await;
    for t in 0..4 {
        a.create_table("rep", &format!("t{t}"), json!({})).await;
    }
    // Four writers per replica, two tables each, with client-style retries.
    let mut writers = Vec::new();
    for (r, app) in [&a, &b].into_iter().enumerate() {
        for w in 0..4 {
            let base = app.base.clone();
            writers.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let table = format!("t{}", (r * 4 + w) % 4);
                let url = format!("{base}/v1/namespaces/rep/tables/{table}");
                let mut acknowledged = Vec::new();
                for _ in 0..6 {
                    loop {
                        let current: Value =
                            client.get(&url).send().await.unwrap().json().await.unwrap();
                        let id = crate::common::next_snapshot_id();
                        let commit = crate::common::append_commit(&current["metadata"], id);
                        let r = client.post(&url).json(&commit).send().await.unwrap();
                        if r.status() == StatusCode::OK {
                            let body: Value = r.json().await.unwrap();
                            acknowledged
                                .push(body["metadata-location"].as_str().unwrap().to_owned());
                            break;
                        }
                        assert_eq!(r.status(), StatusCode::CONFLICT);
                    }
                }
                acknowledged
            }));
        }
    }
    let mut acknowledged = HashSet::new();
    for w in writers {
        acknowledged.extend(w.await.unwrap());
    }
    assert_eq!(acknowledged.len(), 48);
    let seen_a = next_events(&mut feed_a, 48).await;
    let seen_b = next_events(&mut feed_b, 48).await;
    let locations = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| e["data"]["metadata-location"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        locations(&seen_a),
        locations(&seen_b),
        "replicas disagree on the order"
    );
    assert_eq!(
        locations(&seen_a).into_iter().collect::<HashSet<_>>(),
        acknowledged
    );
    assert_no_event(&mut feed_b, Duration::from_millis(300)).await;
}
