//! The `warren` binary: parses flags, layers configuration (defaults < file < WARREN_*
//! environment < flags), starts the broker and stops it on SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// mimalloc gives freed memory back to the system (a drained backlog leaves the broker's
/// RSS near its baseline, where glibc's allocator keeps the peak) and is faster on the
/// many small allocations of the message path. Only the binary sets it: embedders choose.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use warren::{Broker, Config};

#[derive(Parser, Debug)]
#[command(
    name = "warren",
    version,
    about = "An AMQP 0-9-1 message broker, a drop-in replacement for RabbitMQ"
)]
struct Cli {
    /// AMQP listener address, e.g. 127.0.0.1:5672 or [::1]:5672 (repeatable).
    #[arg(long = "amqp-listen", value_name = "ADDR")]
    amqp_listen: Vec<String>,
    /// Directory for durable state.
    #[arg(long = "data-dir", value_name = "PATH")]
    data_dir: Option<PathBuf>,
    /// TOML configuration file (see config/warren.toml).
    #[arg(long = "config", value_name = "PATH")]
    config: Option<PathBuf>,
    /// error, warn, info, debug or trace.
    #[arg(long = "log-level", value_name = "LEVEL")]
    log_level: Option<String>,
}

fn load(cli: &Cli) -> Result<Config, warren::config::ConfigError> {
    let mut config = Config::default();
    if let Some(path) = &cli.config {
        config.apply_file(path)?;
    }
    config.apply_env(std::env::vars())?;
    if !cli.amqp_listen.is_empty() {
        config.set("amqp_listen", &cli.amqp_listen.join(","), "--amqp-listen")?;
    }
    if let Some(d) = &cli.data_dir {
        config.set("data_dir", &d.display().to_string(), "--data-dir")?;
    }
    if let Some(l) = &cli.log_level {
        config.set("log_level", l, "--log-level")?;
    }
    Ok(config)
}

/// A worker that goes idle gives memory back: messages are allocated on the publisher's
/// thread and freed on the queue's, and mimalloc reclaims such cross-thread frees only when
/// the owning thread next runs its collector. At most once a second per thread.
fn collect_when_idle() {
    use std::cell::Cell;
    use std::time::{Duration, Instant};
    thread_local! {
        static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    LAST.with(|last| {
        let now = Instant::now();
        if last
            .get()
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            last.set(Some(now));
            // SAFETY: mi_collect only touches the calling thread's own heap.
            unsafe { libmimalloc_sys::mi_collect(true) };
        }
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warren: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(format!(
            "warren={}",
            config.log_level
        )))
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(collect_when_idle)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("warren: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let data_dir = config.data_dir.clone();
        let broker = match Broker::builder().config(config).start().await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("warren: {e}");
                return ExitCode::FAILURE;
            }
        };
        let (recovered, took) = broker.recovery();
        tracing::info!(
            "recovered {} message(s) in {} durable queue(s) in {} ms",
            recovered.messages,
            recovered.queues,
            took.as_millis()
        );
        let addrs: Vec<String> = broker
            .local_addrs()
            .iter()
            .map(SocketAddr::to_string)
            .collect();
        tracing::info!(
            "Warren {} listening for AMQP on {} (data dir {})",
            env!("CARGO_PKG_VERSION"),
            addrs.join(", "),
            data_dir.display()
        );
        wait_for_signal().await;
        tracing::info!(
            "shutting down: closing {} connection(s)",
            broker.connection_count()
        );
        broker.shutdown().await;
        ExitCode::SUCCESS
    })
}
