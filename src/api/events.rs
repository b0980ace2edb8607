//! `GET /v1/events/stream`: the change feed over a WebSocket. Each text message is one event
//! (JSON with its `cursor`); a subscriber that reconnects with `cursor=<the last one it saw>`
//! continues exactly after it. Filters: `warehouse`, `namespace` (levels joined by 0x1F, the
//! namespace and everything below it), `table` (a table, view or function name), `types`
//! (comma-separated event types or kinds such as `table`).

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::StatusCode;
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiQuery, parse_namespace};
use crate::catalog::events::{EventFilter, Subscription};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    warehouse: Option<String>,
    namespace: Option<String>,
    table: Option<String>,
    types: Option<String>,
    cursor: Option<String>,
}

/// How often an idle connection is pinged (keeps proxies from closing it).
const PING_EVERY: Duration = Duration::from_secs(30);

pub async fn stream(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<StreamQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    if state.lifecycle.is_draining() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            "the server is shutting down; connect to another replica",
        ));
    }
    let filter = EventFilter {
        warehouse: query.warehouse.filter(|w| !w.is_empty()),
        namespace: query
            .namespace
            .filter(|n| !n.is_empty())
            .map(|n| parse_namespace(&n).map(|ns| ns.inner()))
            .transpose()?,
        table: query.table.filter(|t| !t.is_empty()),
        types: query.types.filter(|t| !t.is_empty()).map(|t| {
            t.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        }),
    };
    if let Some(warehouse) = &filter.warehouse {
        state.catalog.warehouse(Some(warehouse)).await?;
    }
    let subscription = state
        .catalog
        .subscribe(filter, query.cursor.as_deref())
        .await?;
    let upgrade = upgrade.map_err(|e| {
        ApiError::bad_request(format!(
            "the change feed is a WebSocket: connect with a WebSocket client ({e})"
        ))
    })?;
    // Counted from the moment the upgrade is accepted, so a client that has its 101 is
    // already a subscriber (in the metrics, and for the shutdown's close frames).
    let open = OpenFeed::enter(&state);
    Ok(upgrade.on_upgrade(move |socket| serve(state, socket, subscription, open)))
}

async fn serve(
    state: AppState,
    socket: WebSocket,
    mut subscription: Subscription,
    _open: OpenFeed,
) {
    let metrics = state.catalog.metrics();
    let mut closing = state.lifecycle.closing.subscribe();
    let (mut sender, mut receiver) = socket.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            events = subscription.next(&mut closing) => {
                let Some(events) = events else {
                    let close = CloseFrame {
                        code: close_code::AWAY,
                        reason: "server shutting down; reconnect with your last cursor".into(),
                    };
                    let _ = sender.send(Message::Close(Some(close))).await;
                    break;
                };
                let count = events.len() as u64;
                let mut sent = Ok(());
                for event in events {
                    let text = serde_json::to_string(&event).expect("events serialize");
                    sent = sender.feed(Message::Text(text.into())).await;
                    if sent.is_err() {
                        break;
                    }
                }
                if sent.is_err() || sender.flush().await.is_err() {
                    break;
                }
                metrics.events_delivered.inc_by(count);
            }
            message = receiver.next() => match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                // Pings are answered by the WebSocket layer; anything else is ignored.
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if sender.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Counts an open feed connection (for the metrics and the shutdown) until dropped.
struct OpenFeed(AppState);

impl OpenFeed {
    fn enter(state: &AppState) -> Self {
        state.catalog.metrics().feed_subscribers.inc();
        state.lifecycle.feeds.send_modify(|n| *n += 1);
        Self(state.clone())
    }
}

impl Drop for OpenFeed {
    fn drop(&mut self) {
        self.0.catalog.metrics().feed_subscribers.dec();
        self.0.lifecycle.feeds.send_modify(|n| *n -= 1);
    }
}
