//! What an idle keep-alive connection costs the server: the process's resident memory grows
//! by a few KiB per open connection, not by the 16 KiB of read and write buffers that hyper
//! gave every connection for as long as it stayed open (vendor/hyper/SERAC-PATCHES.md).

use std::io::{Read, Write};
use std::net::TcpStream;

use super::{start_serac, wait_ready};
use crate::common::free_port;

/// Connections opened before the baseline is taken: the first ones also warm up the
/// allocator and fault in code.
const WARM_UP: usize = 300;
/// Connections measured.
const MEASURED: usize = 3_000;
/// hyper's two 8 KiB buffers alone were 16 KiB per connection; what is left (the task,
/// hyper's connection state, the socket's registration) is about 4 KiB.
const MAX_BYTES_PER_CONNECTION: u64 = 8 * 1024;

fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status");
    kib * 1024
}

/// A connection that has been answered once and stays open, idle.
fn answered_connection(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET /v1/config HTTP/1.1\r\nHost: serac\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed before the answer was complete");
        answer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end];
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert!(
                !head.to_ascii_lowercase().contains("connection: close"),
                "the connection must stay open: {head}"
            );
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .expect("a Content-Length");
            if answer.len() >= end + 4 + length {
                return stream;
            }
        }
    }
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_hold_no_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = start_serac(dir.path(), port, &[]);
    let pid = child.id();
    wait_ready(&reqwest::Client::new(), &format!("http://127.0.0.1:{port}")).await;

    let (before, after, open) = tokio::task::spawn_blocking(move || {
        let mut open: Vec<TcpStream> = (0..WARM_UP).map(|_| answered_connection(port)).collect();
        let before = resident_bytes(pid);
        open.extend((0..MEASURED).map(|_| answered_connection(port)));
        let after = resident_bytes(pid);
        (before, after, open)
    })
    .await
    .unwrap();
    // Every connection is still open and served: one more request on the first of them.
    let mut first = open.into_iter().next().unwrap();
    first
        .write_all(b"GET /v1/config HTTP/1.1\r\nHost: serac\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    first.read_to_end(&mut answer).unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    let _ = child.kill();
    let _ = child.wait();

    let per_connection = after.saturating_sub(before) / MEASURED as u64;
    eprintln!("{MEASURED} idle connections: {per_connection} bytes resident each");
    assert!(
        per_connection <= MAX_BYTES_PER_CONNECTION,
        "{MEASURED} idle keep-alive connections took the server from {} to {} KiB resident: \
         {per_connection} bytes each, more than {MAX_BYTES_PER_CONNECTION}",
        before / 1024,
        after / 1024
    );
}
