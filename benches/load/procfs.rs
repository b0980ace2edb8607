//! What /proc tells about the server process when it runs on this machine (`--server-pid`):
//! its memory (VmRSS, VmHWM), its open files and their limit. Linux only; elsewhere every
//! reading is `None` and the report leaves memory out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Result, anyhow};
use serde_json::{Value, json};

/// One `Vm*:` line of /proc/<pid>/status, in KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// The soft limit on open files of a process (`Max open files` in /proc/<pid>/limits).
pub fn max_open_files(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// How many files (sockets included) a process has open.
pub fn open_files(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Samples the server's resident set size in the background and keeps the peak.
pub struct Memory {
    pub pid: u32,
    idle_kib: u64,
    peak_kib: Arc<AtomicU64>,
    samples: Arc<AtomicU64>,
    every: Duration,
    task: tokio::task::JoinHandle<()>,
}

/// The server's memory over a run, in KiB.
pub struct MemoryReport {
    pub pid: u32,
    pub idle_kib: u64,
    pub peak_sampled_kib: u64,
    pub hwm_kib: Option<u64>,
    pub end_kib: Option<u64>,
    pub samples: u64,
    pub every: Duration,
}

impl Memory {
    /// Reads the RSS now (the server is idle: nothing was sent yet) and starts sampling
    /// every `every`.
    pub fn start(pid: u32, every: Duration) -> Result<Self> {
        let idle_kib = status_kib(pid, "VmRSS").ok_or_else(|| {
            anyhow!("--server-pid {pid}: cannot read VmRSS from /proc/{pid}/status")
        })?;
        let peak_kib = Arc::new(AtomicU64::new(idle_kib));
        let samples = Arc::new(AtomicU64::new(1));
        let (peak, count) = (peak_kib.clone(), samples.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Some(kib) = status_kib(pid, "VmRSS") {
                    peak.fetch_max(kib, Ordering::Relaxed);
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Ok(Memory {
            pid,
            idle_kib,
            peak_kib,
            samples,
            every,
            task,
        })
    }

    /// The RSS now (also counted as a sample).
    pub fn rss_kib(&self) -> Option<u64> {
        let kib = status_kib(self.pid, "VmRSS")?;
        self.observe(kib);
        Some(kib)
    }

    /// Counts an RSS read elsewhere towards the peak.
    pub fn observe(&self, kib: u64) {
        self.peak_kib.fetch_max(kib, Ordering::Relaxed);
    }

    pub fn finish(self) -> MemoryReport {
        self.task.abort();
        let end_kib = self.rss_kib();
        MemoryReport {
            pid: self.pid,
            idle_kib: self.idle_kib,
            peak_sampled_kib: self.peak_kib.load(Ordering::Relaxed),
            hwm_kib: status_kib(self.pid, "VmHWM"),
            end_kib,
            samples: self.samples.load(Ordering::Relaxed),
            every: self.every,
        }
    }
}

impl MemoryReport {
    pub fn line(&self) -> String {
        let opt = |k: Option<u64>| k.map_or_else(|| "?".into(), mib);
        format!(
            "server memory (pid {}): RSS idle after startup {} MiB, peak {} MiB ({} samples every {:.1} s), \
             VmHWM {} MiB, at end {} MiB",
            self.pid,
            mib(self.idle_kib),
            mib(self.peak_sampled_kib),
            self.samples,
            self.every.as_secs_f64(),
            opt(self.hwm_kib),
            opt(self.end_kib),
        )
    }

    pub fn json(&self) -> Value {
        let m = |k: u64| k as f64 / 1024.0;
        json!({
            "pid": self.pid,
            "idle_rss_mib": m(self.idle_kib),
            "peak_rss_mib": m(self.peak_sampled_kib),
            "hwm_mib": self.hwm_kib.map(m),
            "end_rss_mib": self.end_kib.map(m),
            "samples": self.samples,
            "sample_every_s": self.every.as_secs_f64(),
        })
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        self.task.abort();
    }
}
