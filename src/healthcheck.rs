//! `serac healthcheck`: one HTTP GET to a running server, for container health checks. The
//! runtime image has no shell, curl or wget, so the binary checks itself.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};

use crate::config::HealthcheckArgs;

/// Where to connect for a server bound to `bind`: the loopback address of the same family
/// when it listens on every address (`0.0.0.0`, `::`).
pub fn target(bind: SocketAddr) -> SocketAddr {
    let ip = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bind.port())
}

/// `Ok` when the server answers `GET <path>` with 200; otherwise what went wrong.
pub fn check(args: &HealthcheckArgs) -> Result<(), String> {
    let addr = target(args.bind);
    let url = format!("http://{addr}{}", args.path);
    let fail = |what: &str, e: std::io::Error| format!("{url}: {what}: {e}");
    let mut stream =
        TcpStream::connect_timeout(&addr, args.timeout).map_err(|e| fail("cannot connect", e))?;
    stream
        .set_read_timeout(Some(args.timeout))
        .and_then(|()| stream.set_write_timeout(Some(args.timeout)))
        .map_err(|e| fail("socket", e))?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: serac-healthcheck\r\nConnection: close\r\n\r\n",
        args.path
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| fail("cannot send the request", e))?;
    // The status line is all we need; read at most 1 KiB until its end.
    let mut head = Vec::with_capacity(128);
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 1024 {
        let n = stream.read(&mut buf).map_err(|e| fail("no answer", e))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse::<u16>().ok());
    match status {
        Some(200) => Ok(()),
        Some(code) => Err(format!("{url} answered {code}")),
        None => Err(format!("{url}: not an HTTP answer: {status_line:?}")),
    }
}
