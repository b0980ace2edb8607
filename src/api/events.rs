//! `GET /v1/events/stream`: the change feed over a WebSocket. Each text message is one event
//! (JSON with its `cursor`); a subscriber that reconnects with `cursor=<the last one it saw>`
//! continues exactly after it. Filters: `warehouse`, `namespace` (levels joined by 0x1F, the
//! namespace and everything below it), `table` (a table, view or function name), `types`
//! (comma-separated event types or kinds such as `table`).

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiQuery, parse_namespace};
use crate::catalog::Caller;
use crate::catalog::events::{EventFilter, Subscription};
use crate::config::{AllowedOrigin, serialize_origin};

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
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<StreamQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    check_origin(&state.feed_origins, &headers)?;
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
    let subscription = state
        .catalog
        .subscribe(&caller, filter, query.cursor.as_deref())
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

/// Browsers let any page open a WebSocket to any server, with its cookies and from inside
/// the network: the `Origin` they send is what tells pages apart.
fn check_origin(allowed: &[AllowedOrigin], headers: &HeaderMap) -> ApiResult<()> {
    // With a list, only the listed pages (the server's own host too only when listed).
    foreign_origin(allowed, allowed.is_empty(), headers).map_or(Ok(()), |shown| {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "ForbiddenException",
            format!(
                "the change feed does not accept connections from pages of origin '{shown}' (see --allowed-origins)"
            ),
        ))
    })
}

/// The `Origin` of a request from a page that may not call this server (shown for a
/// message), or `None`. A request without one comes from a client that is not a browser
/// and is allowed. A page may call when its origin is in `allowed`, or, with `own_host`,
/// when it was served by the host the request is addressed to.
pub(super) fn foreign_origin(
    allowed: &[AllowedOrigin],
    own_host: bool,
    headers: &HeaderMap,
) -> Option<String> {
    let origin = headers.get(header::ORIGIN)?;
    let origin = String::from_utf8_lossy(origin.as_bytes());
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let ok = (own_host && host.is_some_and(|host| same_host(&origin, host)))
        || allowed.iter().any(|a| a.allows(&origin));
    if ok {
        return None;
    }
    let shown: String = origin.chars().take(200).collect();
    Some(shown.escape_debug().to_string())
}

/// Whether an origin's host and port are those of a `Host` header (default ports omitted).
fn same_host(origin: &str, host: &str) -> bool {
    let Some(origin) = serialize_origin(origin) else {
        return false;
    };
    let Ok(url) = url::Url::parse(&origin) else {
        return false;
    };
    let Ok(requested) = url::Url::parse(&format!("{}://{host}", url.scheme())) else {
        return false;
    };
    requested.path() == "/"
        && requested.query().is_none()
        && requested.fragment().is_none()
        && requested.username().is_empty()
        && requested.origin().ascii_serialization() == origin
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

#[cfg(test)]
mod tests {
    use super::same_host;

    #[test]
    fn same_host_compares_host_and_port() {
        assert!(same_host("http://localhost:8181", "localhost:8181"));
        assert!(same_host("http://LocalHost:8181", "localhost:8181"));
        assert!(same_host("https://ui.example.com", "ui.example.com"));
        assert!(same_host("https://ui.example.com", "ui.example.com:443"));
        assert!(same_host("http://[::1]:8181", "[::1]:8181"));
        assert!(!same_host("http://localhost:8181", "localhost:8182"));
        assert!(!same_host("http://evil.example", "localhost:8181"));
        assert!(!same_host("null", "localhost:8181"));
        assert!(!same_host("http://a.example", "a.example/path"));
        assert!(!same_host("http://a.example", "user@a.example"));
        assert!(!same_host("http://a.example", "a.example?x"));
    }
}
