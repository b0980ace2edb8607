//! The accept loop and the HTTP/1.1 connections (hyper), in place of `axum::serve`, for what
//! a server facing hostile clients needs:
//!
//! - a **header read timeout**: a client that does not send a whole request head in time is
//!   disconnected (hyper's timer starts as soon as the connection waits for a head, so a
//!   silent connection and an idle keep-alive connection are closed after it too);
//! - a **connection limit**: beyond it the loop stops accepting, so new connections wait in
//!   the kernel's listen backlog until one closes (a permit lives as long as the socket, also
//!   after a WebSocket upgrade);
//! - **TCP_NODELAY** on every connection (responses are written whole; Nagle only delays them);
//! - **TLS** when configured (`--tls-cert`, [`super::tls`]): the handshake runs in the
//!   connection's task, after it was accepted under the connection limit, and must complete
//!   within the header read timeout (a client that connects and never finishes it would
//!   otherwise hold its place for good); then the request head has the header read timeout
//!   again, as on a plain connection. A failed handshake (a plain HTTP client, say) closes
//!   the connection and nothing else. Everything below is the same over TLS: the drain's
//!   `Connection: close`, its closing of idle connections (with a TLS close_notify), and its
//!   grace for connections that have not sent a request (one still in its handshake when the
//!   server stops has that grace to finish it);
//! - `ConnectInfo<SocketAddr>` in every request's extensions;
//! - a **drain without resets**. [`Phase::Draining`]: every response carries
//!   `Connection: close`, so keep-alive clients leave after their next answer, and the
//!   listener keeps accepting (those connections are answered the same way).
//!   [`Phase::Stopping`]: the listener stops taking new handshakes (a socket filter drops
//!   SYNs), the connections the kernel completed meanwhile are accepted and served, then it
//!   closes; idle keep-alive connections close, connections that never sent a byte close
//!   after a short grace, and in-flight requests finish within the drain timeout, after
//!   which the rest are cut.
//!
//! Only HTTP/1.1 is served, as before with `axum::serve` (axum's `http2` feature was off):
//! Iceberg clients speak HTTP/1.1, and h2c would add its own hostile-input surface.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tower::ServiceExt;

/// How the connections are run.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionSettings {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    /// After the listener closed, how long in-flight requests may take.
    pub drain_timeout: Duration,
}

/// After the SYN filter is attached, how long handshakes already answered (SYN-ACK sent)
/// have to complete and be accepted before the listener closes: a round trip.
const HANDSHAKE_LINGER: Duration = Duration::from_millis(100);

/// When the server stops, how long a connection that has sent nothing yet may take to send
/// its request before it is closed (a client sends its request right after connecting).
const SILENT_CONNECTION_GRACE: Duration = Duration::from_secs(1);

/// Where the server is in its drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Serving,
    /// Shutdown started: still accepting; every response carries `Connection: close`.
    Draining,
    /// The listener closes; idle connections close, in-flight requests finish.
    Stopping,
}

struct Shared {
    app: Router,
    http: http1::Builder,
    /// `None`: plain HTTP.
    tls: Option<TlsAcceptor>,
    /// The longest a TLS handshake may take (the header read timeout).
    handshake_timeout: Duration,
    phase: watch::Sender<Phase>,
}

/// The serving HTTP server: its accept loop and connections.
pub struct HttpServer {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<usize>,
}

impl HttpServer {
    /// Starts accepting on `listener`, with TLS when `tls` is given.
    pub fn start(
        listener: TcpListener,
        app: Router,
        settings: ConnectionSettings,
        tls: Option<TlsAcceptor>,
    ) -> Self {
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(settings.header_read_timeout);
        let shared = Arc::new(Shared {
            app,
            http,
            tls,
            handshake_timeout: settings.header_read_timeout,
            phase: watch::Sender::new(Phase::Serving),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone(), settings));
        Self { shared, task }
    }

    /// From now on every response carries `Connection: close`; the listener keeps accepting.
    pub fn start_draining(&self) {
        self.shared.phase.send_if_modified(|phase| {
            let modified = *phase < Phase::Draining;
            *phase = (*phase).max(Phase::Draining);
            modified
        });
    }

    /// Closes the listener without resetting a connection the kernel already completed,
    /// closes idle connections and waits for in-flight requests, at most the drain timeout.
    /// Returns how many connections were still open when the timeout cut them.
    pub async fn stop(self) -> usize {
        self.shared.phase.send_replace(Phase::Stopping);
        match self.task.await {
            Ok(cut) => cut,
            Err(e) => {
                tracing::error!(error = %e, "the accept loop failed");
                0
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    settings: ConnectionSettings,
) -> usize {
    let limit = Arc::new(Semaphore::new(settings.max_connections));
    let mut phase = shared.phase.subscribe();
    let mut connections = JoinSet::new();
    let mut permit: Option<OwnedSemaphorePermit> = None;
    loop {
        tokio::select! {
            biased;
            () = until_stopping(&mut phase) => break,
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = joined
                    && e.is_panic()
                {
                    tracing::error!(error = %e, "a connection task panicked");
                }
            }
            acquired = limit.clone().acquire_owned(), if permit.is_none() => {
                permit = Some(acquired.expect("the connection limit is never closed"));
            }
            accepted = listener.accept(), if permit.is_some() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(stream, peer, permit.take(), shared.clone()));
                }
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment instead of spinning.
                    tracing::error!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(permit);
    close_listener(listener, &shared, &mut connections).await;
    let drained = tokio::time::timeout(settings.drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_ok() {
        return 0;
    }
    let cut = connections.len();
    connections.shutdown().await;
    cut
}

/// Completes when the server stops (at once if it already did).
async fn until_stopping(phase: &mut watch::Receiver<Phase>) {
    let _ = phase.wait_for(|p| *p == Phase::Stopping).await;
}

/// Stops new handshakes, accepts (and serves) every connection the kernel completed, then
/// closes the listener. Closing a listener resets the connections in its accept queue, and
/// their clients have usually sent a request already.
async fn close_listener(
    listener: TcpListener,
    shared: &Arc<Shared>,
    connections: &mut JoinSet<()>,
) {
    let listener = match listener.into_std() {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!(error = %e, "the listener could not be drained before closing");
            return;
        }
    };
    if let Err(e) = refuse_new_handshakes(&listener) {
        tracing::warn!(error = %e, "new connections could not be refused before closing the listener");
    }
    let deadline = tokio::time::Instant::now() + HANDSHAKE_LINGER;
    loop {
        accept_backlog(&listener, shared, connections);
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    accept_backlog(&listener, shared, connections);
    drop(listener);
}

/// Accepts every connection waiting in the listen backlog (the listener is non-blocking).
/// They are served beyond the connection limit: there are at most a backlog's worth, and
/// refusing them now would reset them.
fn accept_backlog(
    listener: &std::net::TcpListener,
    shared: &Arc<Shared>,
    connections: &mut JoinSet<()>,
) {
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                let stream = stream
                    .set_nonblocking(true)
                    .and_then(|()| TcpStream::from_std(stream));
                match stream {
                    Ok(stream) => {
                        connections.spawn(serve_connection(stream, peer, None, shared.clone()));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "an accepted connection could not be served")
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if is_connection_error(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(error = %e, "accepting a waiting connection failed");
                return;
            }
        }
    }
}

/// Attaches a socket filter that drops SYN segments to the listening socket, so that no new
/// handshake completes while the backlog is drained; segments of handshakes already
/// answered still pass. Their clients retry the SYN after a second, meet a closed port and
/// see a refused connection, never a reset of a connection they already wrote to.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn refuse_new_handshakes(listener: &std::net::TcpListener) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // The filter sees the TCP header at offset 0; byte 13 holds the flags.
    // A = flags & (SYN | ACK); drop when A == SYN, else accept the whole segment.
    let program = [
        libc::sock_filter {
            code: 0x30,
            jt: 0,
            jf: 0,
            k: 13,
        }, // ldb [13]
        libc::sock_filter {
            code: 0x54,
            jt: 0,
            jf: 0,
            k: 0x12,
        }, // and #0x12
        libc::sock_filter {
            code: 0x15,
            jt: 0,
            jf: 1,
            k: 0x02,
        }, // jeq #0x02, drop, accept
        libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: 0,
        }, // drop: ret #0
        libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: u32::MAX,
        }, // accept: ret #-1
    ];
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `program`, both alive for the call; the kernel copies the
    // program and does not keep the pointer.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            std::ptr::from_ref(&fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn refuse_new_handshakes(_listener: &std::net::TcpListener) -> io::Result<()> {
    Ok(())
}

/// Errors of one connection (it went away before it was accepted), not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    permit: Option<OwnedSemaphorePermit>,
    shared: Arc<Shared>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "TCP_NODELAY could not be set");
    }
    // The permit stays with this task during the handshake, then goes with the stream.
    match shared.tls.clone() {
        None => serve_http(stream, peer, permit, shared).await,
        // Boxed: a task's future is as large as its largest branch, and the TLS one (the
        // handshake, the TLS stream) would make every plain connection's task carry it.
        Some(acceptor) => {
            Box::pin(async move {
                if let Some(stream) = handshake(&acceptor, stream, peer, &shared).await {
                    serve_http(stream, peer, permit, shared).await;
                }
            })
            .await
        }
    }
}

/// The server side of a TLS handshake, within the header read timeout; once the server
/// stops, within the grace of a connection that has not sent a request yet. `None`: the
/// handshake failed or took too long, and the connection is closed.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
) -> Option<TlsStream<TcpStream>> {
    let mut phase = shared.phase.subscribe();
    let stopped = async {
        until_stopping(&mut phase).await;
        tokio::time::sleep(SILENT_CONNECTION_GRACE).await;
    };
    tokio::select! {
        biased;
        accepted = tokio::time::timeout(shared.handshake_timeout, acceptor.accept(stream)) => {
            match accepted {
                Ok(Ok(stream)) => Some(stream),
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    None
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake not completed within the header read timeout");
                    None
                }
            }
        }
        () = stopped => None,
    }
}

/// Serves HTTP/1.1 on a connection (plain or TLS) until it closes.
async fn serve_http<S>(
    stream: S,
    peer: SocketAddr,
    permit: Option<OwnedSemaphorePermit>,
    shared: Arc<Shared>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let received = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(Counted {
        stream,
        received: received.clone(),
        _permit: permit,
    });
    // Whether a request head has arrived on this connection.
    let started = Arc::new(AtomicBool::new(false));
    let service = {
        let (shared, started) = (shared.clone(), started.clone());
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            started.store(true, Ordering::Relaxed);
            request.extensions_mut().insert(ConnectInfo(peer));
            crate::api::plus_as_space(request.uri_mut());
            let shared = shared.clone();
            async move {
                let mut response = shared
                    .app
                    .clone()
                    .oneshot(request.map(axum::body::Body::new))
                    .await?;
                // Checked when the answer leaves, so requests in flight when the drain starts
                // close their connection too. An upgrade keeps its `Connection: upgrade`.
                if *shared.phase.borrow() >= Phase::Draining
                    && response.status() != StatusCode::SWITCHING_PROTOCOLS
                {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut connection = pin!(shared.http.serve_connection(io, service).with_upgrades());
    let mut phase = shared.phase.subscribe();
    let mut stopping = false;
    let silent_grace = tokio::time::sleep(Duration::MAX);
    let mut silent_grace = pin!(silent_grace);
    let mut waiting_for_silent = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection closed with an error");
                }
                return;
            }
            // An idle keep-alive connection closes now, a busy one after its response.
            // One without a request head yet is not closed at once (hyper would do that,
            // dropping a request already on its way from a client that has just connected):
            // its answer will say `Connection: close`, or the header read timeout ends it,
            // or, if it has sent nothing at all, the grace below.
            () = until_stopping(&mut phase), if !stopping => {
                stopping = true;
                if started.load(Ordering::Relaxed) {
                    connection.as_mut().graceful_shutdown();
                } else {
                    waiting_for_silent = true;
                    silent_grace
                        .as_mut()
                        .reset(tokio::time::Instant::now() + SILENT_CONNECTION_GRACE);
                }
            }
            () = &mut silent_grace, if waiting_for_silent => {
                waiting_for_silent = false;
                if !received.load(Ordering::Relaxed) && !started.load(Ordering::Relaxed) {
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// A client connection holding its place under the connection limit for as long as it is
/// open (also inside a WebSocket after an upgrade).
struct Counted<S> {
    /// The socket, or the TLS stream over it.
    stream: S,
    /// Whether a byte (of HTTP, after TLS) has been read.
    received: Arc<AtomicBool>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.received.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The SYN filter keeps new handshakes from completing, while connections already made
    /// (accepted or still queued) keep working.
    #[tokio::test]
    async fn syn_filter_refuses_new_handshakes_only() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut queued = tokio::net::TcpStream::connect(addr).await.unwrap();
        super::refuse_new_handshakes(&listener).unwrap();
        let refused = tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(addr),
        )
        .await;
        assert!(refused.is_err(), "a handshake completed through the filter");
        // The connection made before is accepted and carries data both ways.
        queued.write_all(b"ping").await.unwrap();
        let (stream, _) = listener.accept().unwrap();
        stream.set_nonblocking(true).unwrap();
        let mut stream = tokio::net::TcpStream::from_std(stream).unwrap();
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        stream.write_all(b"pong").await.unwrap();
        queued.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
    }
}
