//! Resource alarms, RabbitMQ's `vm_memory_high_watermark` and `disk_free_limit`: a task
//! samples the broker's resident memory and the free space of the data dir's filesystem and
//! raises the alarm while either is past its limit. Connections that publish are then sent
//! `connection.blocked` (with the reason) and no longer read until it clears; consumers
//! keep draining. Both limits can be changed while running (like rabbitmqctl's
//! `set_vm_memory_high_watermark` and `set_disk_free_limit`). Never blocks a task: only the
//! sampler reads /proc and calls statvfs.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// How often memory and disk are sampled...
const SAMPLE_EVERY: Duration = Duration::from_millis(200);
/// ...and how often once memory is past half the watermark: a fast publisher can add
/// hundreds of megabytes a second, so near the limit the alarm must look often.
const SAMPLE_EVERY_NEAR: Duration = Duration::from_millis(10);

#[derive(Debug)]
pub struct ResourceAlarm {
    memory_limit: AtomicU64,
    disk_free_limit: AtomicU64,
    memory_over: AtomicBool,
    disk_low: AtomicBool,
    /// Where the data lives: the filesystem whose free space counts.
    data_dir: PathBuf,
    raised: watch::Sender<bool>,
    /// The monitor thread, to wake early when messages pile up between two samples.
    monitor: std::sync::OnceLock<std::thread::Thread>,
    /// Message bytes, in sixteenths of the watermark, at the last early wake-up.
    nudged_at: AtomicU64,
}

/// Total RAM from /proc/meminfo, in bytes.
pub fn total_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = info
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// This process's resident memory, in bytes.
pub fn resident_memory() -> Option<u64> {
    resident_memory_of("self")
}

/// Resident memory of process `pid` ("self" for this one), in bytes, from /proc.
pub fn resident_memory_of(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Bytes available to unprivileged users on the filesystem holding `path`.
pub fn free_disk(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` is written by statvfs on success.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let st = unsafe { st.assume_init() };
    // the field types differ between platforms (u32 on some 32-bit targets)
    #[allow(clippy::unnecessary_cast)]
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Why publishers are blocked, as RabbitMQ words it in connection.blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Memory,
    Disk,
}

impl Reason {
    pub fn text(self) -> &'static str {
        match self {
            Reason::Memory => "low on memory",
            Reason::Disk => "low on disk",
        }
    }
}

impl ResourceAlarm {
    /// `memory_limit` and `disk_free_limit` in bytes (u64::MAX / 0 turn them off).
    pub fn new(memory_limit: u64, disk_free_limit: u64, data_dir: PathBuf) -> Arc<Self> {
        let (raised, _) = watch::channel(false);
        Arc::new(Self {
            memory_limit: AtomicU64::new(memory_limit),
            disk_free_limit: AtomicU64::new(disk_free_limit),
            memory_over: AtomicBool::new(false),
            disk_low: AtomicBool::new(false),
            data_dir,
            raised,
            monitor: std::sync::OnceLock::new(),
            nudged_at: AtomicU64::new(0),
        })
    }

    /// Called by publishers with the bytes now held in messages: wake the monitor each
    /// time they grow by a sixteenth of the watermark past half of it. Between two idle
    /// samples (200 ms) a publisher on loopback can add several hundred megabytes; this
    /// lets the alarm look as soon as messages alone say memory is filling. Costs one
    /// load and compare per publish otherwise.
    pub fn note_messages(&self, message_bytes: u64) {
        let limit = self.memory_limit();
        if limit == 0 || message_bytes < limit / 2 {
            if self.nudged_at.load(Ordering::Relaxed) != 0 {
                self.nudged_at.store(0, Ordering::Relaxed);
            }
            return;
        }
        let step = (message_bytes / (limit / 16).max(1)).max(1);
        if step > self.nudged_at.load(Ordering::Relaxed)
            && self.nudged_at.swap(step, Ordering::Relaxed) < step
        {
            if let Some(t) = self.monitor.get() {
                t.unpark();
            }
        }
    }

    pub fn memory_limit(&self) -> u64 {
        self.memory_limit.load(Ordering::Relaxed)
    }

    /// Change the memory watermark; the alarm follows at once.
    pub fn set_memory_limit(&self, bytes: u64) {
        self.memory_limit.store(bytes, Ordering::Relaxed);
        let _ = self.check();
    }

    pub fn disk_free_limit(&self) -> u64 {
        self.disk_free_limit.load(Ordering::Relaxed)
    }

    /// Change the disk free limit; the alarm follows at once.
    pub fn set_disk_free_limit(&self, bytes: u64) {
        self.disk_free_limit.store(bytes, Ordering::Relaxed);
        let _ = self.check();
    }

    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.raised.subscribe()
    }

    pub fn is_raised(&self) -> bool {
        *self.raised.borrow()
    }

    /// The reason to give blocked publishers (memory first when both hold).
    pub fn reason(&self) -> Reason {
        if self.disk_low.load(Ordering::Relaxed) && !self.memory_over.load(Ordering::Relaxed) {
            Reason::Disk
        } else {
            Reason::Memory
        }
    }

    /// Every alarm in effect, in RabbitMQ's listing order (disk before memory).
    pub fn in_effect(&self) -> Vec<Reason> {
        let mut raised = Vec::new();
        if self.disk_low.load(Ordering::Relaxed) {
            raised.push(Reason::Disk);
        }
        if self.memory_over.load(Ordering::Relaxed) {
            raised.push(Reason::Memory);
        }
        raised
    }

    /// Sample both resources; true when memory is past half its limit.
    fn check(&self) -> bool {
        let mut near = false;
        if let Some(rss) = resident_memory() {
            near = rss > self.memory_limit() / 2;
            let limit = self.memory_limit();
            // Over the watermark *because of messages*: when what is above it is memory
            // the allocator kept after a drain, or connections, blocking publishers frees
            // nothing and would hold them for good. RabbitMQ's VM frees per process, so it
            // does not meet this; with a general-purpose allocator Warren must tell them apart.
            let messages = crate::model::message::message_bytes();
            let over = rss > limit && messages >= limit / 4;
            if self.memory_over.swap(over, Ordering::Relaxed) != over {
                if over {
                    tracing::warn!("memory alarm: {rss} bytes resident ({messages} in messages), above the {limit} byte watermark; blocking publishers");
                } else {
                    tracing::info!(
                        "memory alarm cleared: {rss} bytes resident ({messages} in messages)"
                    );
                }
            }
        }
        if let Some(free) = free_disk(&self.data_dir) {
            let limit = self.disk_free_limit();
            let low = free < limit;
            if self.disk_low.swap(low, Ordering::Relaxed) != low {
                if low {
                    tracing::warn!("disk alarm: {free} bytes free on {}, below the {limit} byte limit; blocking publishers", self.data_dir.display());
                } else {
                    tracing::info!("disk alarm cleared: {free} bytes free");
                }
            }
        }
        let raised =
            self.memory_over.load(Ordering::Relaxed) || self.disk_low.load(Ordering::Relaxed);
        self.raised
            .send_if_modified(|r| std::mem::replace(r, raised) != raised);
        near
    }

    /// Sample until the alarm is dropped by everyone else. A thread of its own, not a
    /// task: under the very load the alarm is for, busy workers would delay a timer task
    /// while publishers keep adding memory.
    pub fn spawn_monitor(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("warren-alarm".into())
            .spawn(move || loop {
                let near = match weak.upgrade() {
                    Some(alarm) => alarm.check(),
                    None => break,
                };
                // parked rather than asleep, so `note_messages` can wake it early
                std::thread::park_timeout(if near {
                    SAMPLE_EVERY_NEAR
                } else {
                    SAMPLE_EVERY
                });
            });
        match spawned {
            Ok(handle) => {
                let _ = self.monitor.set(handle.thread().clone());
            }
            Err(e) => tracing::error!("cannot start the resource alarm monitor: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn alarm_follows_either_limit() {
        let alarm = ResourceAlarm::new(u64::MAX, 0, std::env::temp_dir());
        let rx = alarm.subscribe();
        alarm.set_memory_limit(1);
        assert!(*rx.borrow() && alarm.is_raised());
        assert_eq!(alarm.reason(), Reason::Memory);
        alarm.set_memory_limit(u64::MAX);
        assert!(!alarm.is_raised());
        alarm.set_disk_free_limit(u64::MAX);
        assert!(alarm.is_raised());
        assert_eq!(alarm.reason().text(), "low on disk");
        alarm.set_disk_free_limit(0);
        assert!(!alarm.is_raised());
    }

    #[test]
    fn this_process_has_resident_memory_and_its_disk_has_room() {
        assert!(resident_memory().unwrap_or(0) > 0);
        assert!(free_disk(&std::env::temp_dir()).unwrap_or(0) > 0);
        assert_eq!(free_disk(std::path::Path::new("/no/such/dir")), None);
    }
}
