//! CPU time, RSS and context switches of a process from /proc, for the broker under test
//! and for this tool.

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// user + system CPU seconds so far
    pub cpu: f64,
    pub rss_kb: u64,
    /// voluntary and involuntary context switches of all its threads so far: at a fixed
    /// rate nearly each is a sleep and a wake-up, which on this VM costs either broker
    /// more than Warren's own work on a message
    pub switches: u64,
}

fn clock_ticks() -> f64 {
    // Linux's USER_HZ is 100 on every platform we run on; /proc reports in it.
    100.0
}

pub fn sample(pid: &str) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // fields after the parenthesised command name; utime and stime are 14th and 15th
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    Some(Sample {
        cpu: (utime + stime) / clock_ticks(),
        rss_kb,
        switches: switches(pid),
    })
}

/// The broker's figures over a measured window in which `per` messages passed.
pub fn broker_figures(b0: &Sample, b1: &Sample, per: f64, secs: f64) -> [(&'static str, f64); 4] {
    [
        ("broker_cpu_us_per_msg", (b1.cpu - b0.cpu) * 1e6 / per),
        ("broker_cpu_percent", (b1.cpu - b0.cpu) * 100.0 / secs),
        ("broker_rss_mb", b1.rss_kb as f64 / 1024.0),
        (
            "broker_switches_per_msg",
            b1.switches.saturating_sub(b0.switches) as f64 / per,
        ),
    ]
}

/// Summed over /proc/PID/task, since the process's own status counts only its main thread.
/// A thread that ended takes its count with it; the brokers' threads live for the run.
fn switches(pid: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .map(|status| {
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// Samples a process (or nothing, when no pid was given).
#[derive(Debug, Clone)]
pub struct Probe {
    pid: Option<String>,
}

impl Probe {
    pub fn broker(pid: Option<u32>) -> Self {
        Probe {
            pid: pid.map(|p| p.to_string()),
        }
    }

    pub fn this_process() -> Self {
        Probe {
            pid: Some("self".into()),
        }
    }

    pub fn sample(&self) -> Option<Sample> {
        sample(self.pid.as_deref()?)
    }
}
