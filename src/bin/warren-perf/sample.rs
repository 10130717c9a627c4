//! CPU time and RSS of a process from /proc, for the broker under test and for this tool.

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// user + system CPU seconds so far
    pub cpu: f64,
    pub rss_kb: u64,
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
    })
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
