//! HTTPS served by `serac serve` itself (`--tls-cert`, `--tls-key`), through the real binary:
//! certificates signed at test time by a test CA, a rustls client that trusts only that CA
//! and reads which certificate the server presented, SIGHUP reloads.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{free_port, start_serac};

/// A CA made for one test, and clients that trust it alone.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
}

/// A server certificate for `localhost` and its key.
struct ServerCert {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl TestCa {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Serac test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A new certificate for `localhost` with common name `name` (and a new key).
    fn server_cert(&self, name: &str) -> ServerCert {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    fn connector(&self) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        // Every connection a full handshake: a resumed session presents no certificate, and
        // the client would report the one of the session it resumed.
        config.resumption = rustls::client::Resumption::disabled();
        TlsConnector::from(Arc::new(config))
    }
}

/// Where the server's certificate and key files are.
struct TlsPaths {
    cert: PathBuf,
    key: PathBuf,
}

impl TlsPaths {
    fn in_dir(dir: &Path) -> Self {
        Self {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }

    fn write(&self, cert: &ServerCert) {
        std::fs::write(&self.cert, &cert.cert_pem).unwrap();
        std::fs::write(&self.key, &cert.key_pem).unwrap();
    }

    fn flags(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
        ]
    }
}

/// The server process, killed if a test fails before it ends it.
struct Serac(Child);

impl Serac {
    fn start(dir: &Path, port: u16, extra: &[String]) -> Self {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        Self(start_serac(dir, port, &extra))
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }
}

impl Drop for Serac {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTPS connection: the certificate the server presented on it, and its HTTP/1.1.
struct HttpsConn {
    served: CertificateDer<'static>,
    sender: SendRequest<Empty<Bytes>>,
}

/// A response: status, whether it closes the connection, body.
struct Answer {
    status: u16,
    closes: bool,
    body: Bytes,
}

impl HttpsConn {
    async fn connect(port: u16, connector: &TlsConnector) -> io::Result<Self> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        let name = ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, tcp).await?;
        let served = tls.get_ref().1.peer_certificates().expect("a certificate")[0].clone();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(io::Error::other)?;
        tokio::spawn(connection);
        Ok(Self { served, sender })
    }

    /// GET `path` on this connection (never another one).
    async fn get(&mut self, path: &str) -> Result<Answer, hyper::Error> {
        self.sender.ready().await?;
        let request = http::Request::get(path)
            .header(http::header::HOST, "localhost")
            .body(Empty::new())
            .unwrap();
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let closes = response
            .headers()
            .get(http::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            closes,
            body,
        })
    }
}

/// A server serving HTTPS with the certificate `first` ("serac one") of a test CA, ready.
struct TlsServer {
    dir: tempfile::TempDir,
    ca: TestCa,
    first: ServerCert,
    paths: TlsPaths,
    port: u16,
    connector: TlsConnector,
    serac: Serac,
}

impl TlsServer {
    async fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        let first = ca.server_cert("serac one");
        let paths = TlsPaths::in_dir(dir.path());
        paths.write(&first);
        let port = free_port();
        let mut flags = paths.flags();
        flags.extend(extra.iter().map(|f| f.to_string()));
        let serac = Serac::start(dir.path(), port, &flags);
        let connector = ca.connector();
        wait_ready_https(port, &connector).await;
        Self {
            dir,
            ca,
            first,
            paths,
            port,
            connector,
            serac,
        }
    }

    async fn connect(&self) -> HttpsConn {
        HttpsConn::connect(self.port, &self.connector)
            .await
            .unwrap()
    }
}

/// Waits up to 30 s until `/ready` answers 200 over HTTPS.
async fn wait_ready_https(port: u16, connector: &TlsConnector) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(mut conn) = HttpsConn::connect(port, connector).await
            && let Ok(answer) = conn.get("/ready").await
            && answer.status == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("serac on port {port} never became ready over HTTPS");
}

/// Waits up to 30 s until a new connection is served `expected`.
async fn wait_served(port: u16, connector: &TlsConnector, expected: &CertificateDer<'_>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let conn = HttpsConn::connect(port, connector).await.unwrap();
        if conn.served == *expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("new connections never got the reloaded certificate");
}

/// The `error` fields of the server's ERROR log lines.
fn logged_errors(dir: &Path) -> Vec<String> {
    let log = std::fs::read_to_string(dir.join("serac.log")).unwrap_or_default();
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["level"] == "ERROR")
        .map(|l| l["error"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Waits up to 30 s for the server to log its `n`th error, and returns it.
async fn wait_logged_error(dir: &Path, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(error) = logged_errors(dir).get(n - 1) {
            return error.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server never logged error {n}");
}

/// Sends SIGHUP and waits for the `n`th error logged, which must name `file` and `problem`;
/// new connections still get `served`.
async fn refused_reload(
    server: &TlsServer,
    n: usize,
    file: &Path,
    problem: &str,
    served: &ServerCert,
) {
    server.serac.signal("HUP");
    let error = wait_logged_error(server.dir.path(), n).await;
    let file = file.display().to_string();
    assert!(
        error.contains(&file) && error.contains(problem),
        "expected {file} and {problem:?}: {error}"
    );
    let mut conn = server.connect().await;
    assert!(
        conn.served == served.der,
        "{problem}: the last good certificate is gone"
    );
    assert_eq!(conn.get("/v1/config").await.unwrap().status, 200);
}

/// Whether the server closed `stream` (end of file or reset) within 15 s; anything it sends
/// before is read and dropped.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let read_to_end = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), read_to_end)
        .await
        .is_ok()
}

/// HTTPS answers with the configured certificate, which the test CA vouches for; a plain HTTP
/// client on the same port fails at once (it gets no HTTP answer, and does not hang), and the
/// server goes on serving HTTPS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_https_and_turns_plain_http_away() {
    let server = TlsServer::start(&[]).await;
    let port = server.port;
    let mut conn = server.connect().await;
    assert!(
        conn.served == server.first.der,
        "another certificate was served"
    );
    let answer = conn.get("/v1/config").await.unwrap();
    assert_eq!(answer.status, 200);
    let config: Value = serde_json::from_slice(&answer.body).unwrap();
    assert!(config["defaults"].is_object(), "{config}");

    // Plain HTTP through reqwest: an error, not a response and not a timeout.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let refused = plain
        .get(format!("http://127.0.0.1:{port}/v1/config"))
        .send()
        .await;
    let e = refused.expect_err("plain HTTP got an answer from the HTTPS port");
    assert!(!e.is_timeout(), "plain HTTP hung: {e}");
    // And on a bare socket: the server closes it.
    let mut raw = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    raw.write_all(b"GET /v1/config HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    assert!(
        closed_by_server(&mut raw).await,
        "plain HTTP connection left open"
    );

    // HTTPS goes on, on the connection made before and on a new one.
    assert_eq!(conn.get("/v1/config").await.unwrap().status, 200);
    let mut again = server.connect().await;
    assert_eq!(again.get("/health").await.unwrap().status, 200);
}

/// SIGHUP after new files: a connection made before keeps working (the same keep-alive
/// connection answers again) and new connections get the new certificate. A SIGHUP whose files
/// are wrong (a key of another certificate, a key file that is not PEM, a missing certificate
/// file) logs the file and the problem, and the last good certificate stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_sighup_reloads_the_certificate_and_keeps_it_when_the_files_are_wrong() {
    let server = TlsServer::start(&[]).await;
    let (paths, first) = (&server.paths, &server.first);
    let second = server.ca.server_cert("serac two");
    let stranger = server.ca.server_cert("someone else");
    let mut before = server.connect().await;
    assert!(before.served == first.der);
    assert_eq!(before.get("/v1/config").await.unwrap().status, 200);

    paths.write(&second);
    server.serac.signal("HUP");
    wait_served(server.port, &server.connector, &second.der).await;
    let answer = before.get("/v1/config").await.unwrap();
    assert_eq!(answer.status, 200);
    assert!(!answer.closes, "the reload closed an open connection");
    let mut after = server.connect().await;
    assert!(after.served == second.der);
    assert_eq!(after.get("/v1/config").await.unwrap().status, 200);

    // Wrong files, one set after the other: each reload is refused and says why.
    std::fs::write(&paths.key, &stranger.key_pem).unwrap();
    let problem = "is not the private key of the certificate";
    refused_reload(&server, 1, &paths.key, problem, &second).await;
    std::fs::write(&paths.key, "not a key\n").unwrap();
    refused_reload(&server, 2, &paths.key, "holds no PEM private key", &second).await;
    std::fs::write(&paths.key, &second.key_pem).unwrap();
    std::fs::remove_file(&paths.cert).unwrap();
    refused_reload(&server, 3, &paths.cert, "cannot read", &second).await;
    let answer = before.get("/v1/config").await.unwrap();
    assert_eq!(answer.status, 200);
    assert!(before.served == first.der);
}

/// A client that connects and sends nothing, or starts a handshake and stalls, is closed
/// after the header read timeout: with room for one connection, it would otherwise keep
/// every other client out for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshake_is_bounded_by_the_header_read_timeout() {
    let server = TlsServer::start(&["--header-read-timeout", "1s", "--max-connections", "1"]).await;
    let port = server.port;
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert!(
        closed_by_server(&mut silent).await,
        "a silent connection is still open"
    );
    // The first bytes of a TLS record, and no more.
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    assert!(
        closed_by_server(&mut stalled).await,
        "a stalled handshake is still open"
    );
    let mut conn = server.connect().await;
    assert_eq!(conn.get("/v1/config").await.unwrap().status, 200);
}

/// The drain works the same over TLS: once SIGTERM arrived, an open keep-alive connection is
/// answered with `Connection: close`, and the server exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_connections_drain_on_sigterm() {
    let mut server = TlsServer::start(&["--shutdown-delay", "3s"]).await;
    let mut kept = server.connect().await;
    let answer = kept.get("/v1/config").await.unwrap();
    assert!(!answer.closes);

    server.serac.signal("TERM");
    // Draining: /ready says 503 on new connections.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut probe = server.connect().await;
        if probe.get("/ready").await.unwrap().status == 503 {
            break;
        }
        assert!(Instant::now() < deadline, "/ready never turned 503");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answer = kept.get("/v1/config").await.unwrap();
    assert_eq!(answer.status, 200);
    assert!(answer.closes, "a draining answer kept the connection");
    let status = tokio::task::spawn_blocking(move || server.serac.0.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "serac exited with {status}");
}

/// Only one of the two flags, or files that cannot serve, stop the start with one line that
/// says what is wrong.
#[test]
fn tls_start_with_wrong_settings_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let cert = ca.server_cert("serac one");
    let paths = TlsPaths::in_dir(dir.path());
    paths.write(&cert);
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "hello\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let (cert_path, key_path) = (paths.cert.display(), paths.key.display());
    let (garbage, missing) = (garbage.display(), missing.display());
    let cases: Vec<(Vec<String>, Vec<String>)> = vec![
        (
            vec!["--tls-cert".into(), cert_path.to_string()],
            vec!["--tls-key".into()],
        ),
        (
            vec!["--tls-key".into(), key_path.to_string()],
            vec!["--tls-cert".into()],
        ),
        (
            vec![
                "--tls-cert".into(),
                garbage.to_string(),
                "--tls-key".into(),
                key_path.to_string(),
            ],
            vec![garbage.to_string(), "no PEM certificate".into()],
        ),
        (
            vec![
                "--tls-cert".into(),
                cert_path.to_string(),
                "--tls-key".into(),
                missing.to_string(),
            ],
            vec![missing.to_string(), "cannot read".into()],
        ),
    ];
    for (flags, expected) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_serac"))
            .args(["--log-format", "json", "serve", "--bind", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(&flags)
            .env_remove("SERAC_TLS_CERT")
            .env_remove("SERAC_TLS_KEY")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flags:?} started");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{flags:?}: {stderr}");
        for part in &expected {
            assert!(stderr.contains(part.as_str()), "{flags:?}: {stderr}");
        }
    }
}
