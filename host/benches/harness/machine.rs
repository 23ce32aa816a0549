//! What the numbers were measured on, and the process's resident memory. The
//! host runs inside the harness process, so its RSS is the host's RSS (plus the
//! load generator's, which is small next to it).
use serde::Serialize;
use std::process::Command;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub ram_gib: f64,
    pub os: String,
    pub rustc: String,
    pub profile: &'static str,
    pub date: String,
}

impl Machine {
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".into(), |(_, v)| v.trim().to_owned());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let ram_kib = proc_field("/proc/meminfo", "MemTotal:").unwrap_or(0);
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let distro = os_release
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map_or_else(|| "Linux".into(), |v| v.trim_matches('"').to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let rustc = Command::new(rustc)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "unknown".into());
        let now = time::OffsetDateTime::now_utc();
        let date = format!(
            "{}-{:02}-{:02} {:02}:{:02} UTC",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute()
        );
        Machine {
            cpu,
            cores,
            ram_gib: ram_kib as f64 / (1024.0 * 1024.0),
            os: format!("{distro}, kernel {}", kernel.trim()),
            rustc,
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            date,
        }
    }
}

/// The process's resident set size in bytes (`VmRSS`).
pub fn rss_bytes() -> u64 {
    proc_field("/proc/self/status", "VmRSS:").unwrap_or(0) * 1024
}

/// A `kB` field of a /proc file.
fn proc_field(path: &str, field: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
