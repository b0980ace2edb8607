//! The `connections` scenario: many concurrent keep-alive HTTP/1.1 connections, each doing
//! `GET /v1/config` over and over. Every task owns one raw hyper client connection (one
//! socket), unlike a shared reqwest pool, which would hand a few sockets to many tasks.
//!
//! The connections are opened first (at most `parallel` handshakes at a time, so that the
//! listen backlog does not overflow) and each answers one request; while the others open,
//! an open one sends a request every [`KEEP_ALIVE`] so that the server's idle timeout does not
//! close it. Only when all are open (or failed) does the timed part start.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::Stats;
use crate::procfs;

/// A request on every waiting connection this often while the others open (Serac closes
/// keep-alive connections idle for `--header-read-timeout`, 30 s by default).
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// File descriptors the load generator needs besides the connections.
const SPARE_FILES: u64 = 256;

pub struct Settings {
    /// `http://host:port[/base]` of the catalog.
    pub uri: String,
    pub token: Option<String>,
    pub connections: usize,
    /// Handshakes in flight at once while opening.
    pub parallel: usize,
    pub duration: Duration,
    pub timeout: Duration,
    pub server_pid: Option<u32>,
}

/// What opening and using the connections gave.
pub struct Outcome {
    pub opened: usize,
    pub failed: usize,
    pub first_open_error: Option<String>,
    pub open_time: Duration,
    /// Requests during the timed part (a connection that broke is opened again, counted as an
    /// error).
    pub stats: Stats,
    pub elapsed: Duration,
    /// Server RSS (KiB) and open files once all connections were open, before the timed part.
    pub rss_open_kib: Option<u64>,
    pub server_files_open: Option<usize>,
    /// Server RSS (KiB) at the end of the timed part, the connections still open.
    pub rss_end_kib: Option<u64>,
}

/// Where the requests go.
struct Target {
    addr: String,
    host: String,
    path: String,
    auth: Option<String>,
    timeout: Duration,
}

/// Checks (and if possible raises) this process's open-file limit for `connections`, and
/// the server's limit when its pid is known. Err: a message saying what to do.
pub fn check_limits(connections: usize, server_pid: Option<u32>) -> Result<Vec<String>, String> {
    let needed = connections as u64 + SPARE_FILES;
    let mut notes = Vec::new();
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err("cannot read the open-file limit (getrlimit)".into());
    }
    if lim.rlim_cur < needed {
        if lim.rlim_max < needed {
            return Err(format!(
                "the open-file limit (ulimit -n) is {} (hard limit {}), but {connections} connections \
                 need at least {needed}: raise it (`ulimit -n {needed}`; the hard limit as root) \
                 or lower --connections",
                lim.rlim_cur, lim.rlim_max
            ));
        }
        let raised = libc::rlimit {
            rlim_cur: needed,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we pass; the new soft limit is within the hard one.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(format!(
                "the open-file limit (ulimit -n) is {}; {connections} connections need at least \
                 {needed}, and raising it failed: run `ulimit -n {needed}` first",
                lim.rlim_cur
            ));
        }
        notes.push(format!(
            "raised this process's open-file limit from {} to {needed}",
            lim.rlim_cur
        ));
    }
    if let Some(pid) = server_pid
        && let Some(server) = procfs::max_open_files(pid)
        && server < connections as u64 + 64
    {
        notes.push(format!(
            "WARNING: the server's open-file limit is {server}, below {connections} connections \
             (start it under `ulimit -n {needed}`)"
        ));
    }
    if let Ok(range) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") {
        let ports: Vec<u64> = range
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if let [low, high] = ports[..]
            && high.saturating_sub(low) < connections as u64
        {
            notes.push(format!(
                "WARNING: only {} local ports ({low}-{high}, net.ipv4.ip_local_port_range) for {connections} connections",
                high.saturating_sub(low)
            ));
        }
    }
    Ok(notes)
}

impl Target {
    fn new(s: &Settings) -> Result<Self> {
        let url = reqwest::Url::parse(&s.uri).map_err(|e| anyhow!("--uri {}: {e}", s.uri))?;
        if url.scheme() != "http" {
            bail!(
                "the connections scenario speaks plain http only, not {}",
                url.scheme()
            );
        }
        let host = url
            .host_str()
            .ok_or_else(|| anyhow!("--uri {} has no host", s.uri))?;
        let port = url.port_or_known_default().unwrap_or(80);
        Ok(Target {
            addr: format!(
                "{}:{port}",
                host.trim_start_matches('[').trim_end_matches(']')
            ),
            host: format!("{host}:{port}"),
            path: format!("{}/v1/config", url.path().trim_end_matches('/')),
            auth: s.token.as_ref().map(|t| format!("Bearer {t}")),
            timeout: s.timeout,
        })
    }

    /// A new connection (its driver runs as its own task until the sender is dropped).
    async fn open(&self) -> Result<SendRequest<Empty<Bytes>>, String> {
        let stream = tokio::net::TcpStream::connect(&self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// One GET on `sender`, body read whole. Err((broken, message)): `broken` when the
    /// connection cannot be used again.
    async fn ask(&self, sender: &mut SendRequest<Empty<Bytes>>) -> Result<(), (bool, String)> {
        let mut req = http::Request::get(&self.path).header(http::header::HOST, &self.host);
        if let Some(auth) = &self.auth {
            req = req.header(http::header::AUTHORIZATION, auth);
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|e| (false, format!("building the request: {e}")))?;
        let exchange = async {
            sender
                .ready()
                .await
                .map_err(|e| (true, format!("connection: {e}")))?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| (true, format!("request: {e}")))?;
            let status = resp.status();
            resp.into_body()
                .collect()
                .await
                .map_err(|e| (true, format!("reading body: {e}")))?;
            if status.is_success() {
                Ok(())
            } else {
                Err((false, format!("GET {}: {status}", self.path)))
            }
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err((true, format!("timed out after {:?}", self.timeout))),
        }
    }

    /// Opens a connection and asks once through it.
    async fn open_and_ask(&self) -> Result<SendRequest<Empty<Bytes>>, String> {
        let mut sender = tokio::time::timeout(self.timeout, self.open())
            .await
            .map_err(|_| format!("connect timed out after {:?}", self.timeout))??;
        self.ask(&mut sender).await.map_err(|(_, e)| e)?;
        Ok(sender)
    }
}

/// One connection's life: open, wait for the start (keeping alive), then ask until the
/// deadline.
async fn connection(
    target: Arc<Target>,
    handshakes: Arc<Semaphore>,
    opened: mpsc::UnboundedSender<Result<(), String>>,
    mut start: watch::Receiver<Option<Instant>>,
) -> Stats {
    let mut st = Stats::default();
    let first = {
        let _permit = handshakes.acquire().await;
        target.open_and_ask().await
    };
    let mut conn = match first {
        Ok(sender) => {
            let _ = opened.send(Ok(()));
            Some(sender)
        }
        Err(e) => {
            let _ = opened.send(Err(e));
            return st;
        }
    };
    drop(opened);
    let deadline = loop {
        if let Some(deadline) = *start.borrow_and_update() {
            break deadline;
        }
        tokio::select! {
            changed = start.changed() => if changed.is_err() { return st },
            () = tokio::time::sleep(KEEP_ALIVE) => {
                if let Some(sender) = conn.as_mut()
                    && let Err((broken, e)) = target.ask(sender).await
                {
                    st.error(format!("while the others opened: {e}"));
                    if broken {
                        conn = None;
                    }
                }
            }
        }
    };
    while Instant::now() < deadline {
        let sender = match conn.as_mut() {
            Some(sender) => sender,
            None => match target.open().await {
                Ok(sender) => conn.insert(sender),
                Err(e) => {
                    st.error(format!("reopening: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let t0 = Instant::now();
        match target.ask(sender).await {
            Ok(()) => st.lat.push(t0.elapsed()),
            Err((broken, e)) => {
                st.error(e);
                if broken {
                    conn = None;
                }
            }
        }
    }
    st
}

pub async fn run(s: Settings) -> Result<Outcome> {
    let target = Arc::new(Target::new(&s)?);
    let handshakes = Arc::new(Semaphore::new(s.parallel.max(1)));
    let (start_tx, start_rx) = watch::channel(None);
    let (opened_tx, mut opened_rx) = mpsc::unbounded_channel();
    let began = Instant::now();
    let tasks: Vec<_> = (0..s.connections)
        .map(|_| {
            tokio::spawn(connection(
                target.clone(),
                handshakes.clone(),
                opened_tx.clone(),
                start_rx.clone(),
            ))
        })
        .collect();
    drop(opened_tx);
    let (mut opened, mut failed, mut first_open_error) = (0, 0, None);
    let mut progress = Instant::now();
    while let Some(result) = opened_rx.recv().await {
        match result {
            Ok(()) => opened += 1,
            Err(e) => {
                failed += 1;
                first_open_error.get_or_insert(e);
            }
        }
        if progress.elapsed() >= Duration::from_secs(5) {
            progress = Instant::now();
            eprintln!(
                "  .. {opened} open, {failed} failed in {:.1} s",
                began.elapsed().as_secs_f64()
            );
        }
        if opened + failed == s.connections {
            break;
        }
    }
    let open_time = began.elapsed();
    let rss = || {
        s.server_pid
            .and_then(|pid| procfs::status_kib(pid, "VmRSS"))
    };
    let rss_open_kib = rss();
    let server_files_open = s.server_pid.and_then(procfs::open_files);

    let started = Instant::now();
    let deadline = started + s.duration;
    let _ = start_tx.send(Some(deadline));
    tokio::time::sleep_until(deadline.into()).await;
    let rss_end_kib = rss();
    let mut stats = Stats::default();
    for task in futures::future::join_all(tasks).await {
        match task {
            Ok(st) => stats.merge(st),
            Err(e) => stats.error(format!("connection task panicked: {e}")),
        }
    }
    Ok(Outcome {
        opened,
        failed,
        first_open_error,
        open_time,
        stats,
        elapsed: started.elapsed(),
        rss_open_kib,
        server_files_open,
        rss_end_kib,
    })
}
