//! A bare HTTP/1.1 client on one TCP connection, for tests that must see exactly what happens
//! on the wire: which connection a request went out on, whether it was answered, whether
//! the server asked to close. (reqwest pools and retries connections, which hides that.)

use std::io;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One connection.
pub struct RawConn {
    stream: BufReader<TcpStream>,
    host: String,
    /// The last request was a HEAD: its response has no body.
    head: bool,
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the server closes the connection after this response.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// How a request on an established connection ended without a response.
#[derive(Debug)]
pub enum Failure {
    /// Writing the request failed.
    Write(io::Error),
    /// The request was written; the connection closed or reset before a whole response.
    Unanswered(io::Error),
}

impl RawConn {
    /// Connects to `addr` (`host:port`), with TCP_NODELAY like real clients.
    pub async fn connect(addr: &str) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(stream),
            host: addr.to_owned(),
            head: false,
        })
    }

    /// Connects, failing after `timeout`.
    pub async fn connect_timeout(addr: &str, timeout: Duration) -> io::Result<Self> {
        tokio::time::timeout(timeout, Self::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
    }

    /// Sends raw bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.get_mut().write_all(bytes).await
    }

    /// Sends a request (with a JSON body when `body` is given) and reads its response.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> Result<RawResponse, Failure> {
        let body = body.map(|b| serde_json::to_vec(b).expect("JSON"));
        let mut extra: Vec<(&str, &str)> = headers.to_vec();
        if body.is_some()
            && !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            extra.push(("Content-Type", "application/json"));
        }
        self.request_bytes(method, path, body.as_deref(), &extra)
            .await
    }

    /// Sends a request with exactly the given headers and body bytes and reads its response.
    pub async fn request_bytes(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Result<RawResponse, Failure> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        self.head = method == "HEAD";
        self.send_raw(&bytes).await.map_err(Failure::Write)?;
        self.read_response().await.map_err(Failure::Unanswered)
    }

    /// Reads one response.
    pub async fn read_response(&mut self) -> io::Result<RawResponse> {
        let status_line = self.line().await?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| bad(format!("bad header {line:?}")))?;
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let mut response = RawResponse {
            status,
            headers,
            body: Vec::new(),
        };
        if self.head || status == 204 || status == 304 || (100..200).contains(&status) {
            return Ok(response);
        }
        if let Some(len) = response.header("content-length") {
            let len: usize = len.parse().map_err(|_| bad("bad content-length"))?;
            response.body = vec![0; len];
            self.stream.read_exact(&mut response.body).await?;
        } else if response
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let size = self.line().await?;
                let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| bad("bad chunk size"))?;
                let mut chunk = vec![0; size];
                self.stream.read_exact(&mut chunk).await?;
                self.line().await?;
                if size == 0 {
                    break;
                }
                response.body.extend_from_slice(&chunk);
            }
        } else {
            self.stream.read_to_end(&mut response.body).await?;
        }
        Ok(response)
    }

    /// Whether the server closed the connection within `wait` (reading nothing more).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let mut buf = [0u8; 1];
        matches!(
            tokio::time::timeout(wait, self.stream.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    async fn line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a whole response",
            ));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

fn bad(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}
