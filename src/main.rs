//! The `warren` binary: parses flags, layers configuration (defaults < file < WARREN_*
//! environment < flags), starts the broker and stops it on SIGINT/SIGTERM.

use std::io::IsTerminal;
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
    /// Configuration file: Warren's TOML (see config/warren.toml), or RabbitMQ's
    /// rabbitmq.conf when the name ends in .conf.
    #[arg(long = "config", value_name = "PATH")]
    config: Option<PathBuf>,
    /// error, warn, info, debug or trace.
    #[arg(long = "log-level", value_name = "LEVEL")]
    log_level: Option<String>,
    /// AMQP over TLS listener, e.g. 0.0.0.0:5671 (repeatable). Given without
    /// --amqp-listen, the broker is TLS-only.
    #[arg(long = "amqps-listen", value_name = "ADDR")]
    amqps_listen: Vec<String>,
    /// PEM certificate chain for amqps.
    #[arg(long = "tls-cert", value_name = "PATH")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for amqps.
    #[arg(long = "tls-key", value_name = "PATH")]
    tls_key: Option<PathBuf>,
    /// PEM CA bundle that client certificates are verified against.
    #[arg(long = "tls-ca", value_name = "PATH")]
    tls_ca: Option<PathBuf>,
    /// Ask clients for a certificate and verify it against --tls-ca.
    #[arg(long = "tls-verify-peer")]
    tls_verify_peer: bool,
    /// With --tls-verify-peer: refuse clients that present no certificate.
    #[arg(long = "tls-fail-if-no-peer-cert")]
    tls_fail_if_no_peer_cert: bool,
    /// For test suites: TTLs, queue expiry and the consumer timeout follow a clock that
    /// stands still until POST /api/clock/advance moves it.
    #[arg(long = "manual-clock")]
    manual_clock: bool,
    /// Management HTTP API listener (repeatable; default 0.0.0.0:15672 and [::]:15672;
    /// "none" turns it off).
    #[arg(long = "management-listen", value_name = "ADDR")]
    management_listen: Vec<String>,
    /// Prometheus metrics listener (repeatable; default 0.0.0.0:15692 and [::]:15692;
    /// "none" turns it off).
    #[arg(long = "prometheus-listen", value_name = "ADDR")]
    prometheus_listen: Vec<String>,
}

/// The configuration, and the warnings to log once logging is up: RabbitMQ settings Warren
/// does not act on, files that were not there.
fn load(cli: &Cli) -> Result<(Config, Vec<String>), warren::config::ConfigError> {
    let mut config = Config::default();
    let mut warnings = Vec::new();
    if let Some(path) = &cli.config {
        warnings.extend(config.apply_file(path)?);
    }
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let (files, notes) = warren::config::rabbitmq_conf::read_files(&vars)?;
    warnings.extend(notes);
    warnings.extend(warren::config::rabbitmq_conf::apply_files(
        &mut config,
        &files,
    )?);
    warnings.extend(config.apply_env(vars)?);
    if !cli.amqp_listen.is_empty() {
        config.set("amqp_listen", &cli.amqp_listen.join(","), "--amqp-listen")?;
    }
    if !cli.amqps_listen.is_empty() {
        config.set(
            "amqps_listen",
            &cli.amqps_listen.join(","),
            "--amqps-listen",
        )?;
        if cli.amqp_listen.is_empty() {
            // TLS-only: the plaintext listener is off unless asked for on the command line
            config.set("amqp_listen", "", "--amqps-listen")?;
        }
    }
    for (flag, key, value) in [
        ("--tls-cert", "tls_cert", &cli.tls_cert),
        ("--tls-key", "tls_key", &cli.tls_key),
        ("--tls-ca", "tls_ca", &cli.tls_ca),
    ] {
        if let Some(v) = value {
            config.set(key, &v.display().to_string(), flag)?;
        }
    }
    if cli.tls_verify_peer {
        config.set("tls_verify_peer", "true", "--tls-verify-peer")?;
    }
    if cli.manual_clock {
        config.set("manual_clock", "true", "--manual-clock")?;
    }
    if cli.tls_fail_if_no_peer_cert {
        config.set(
            "tls_fail_if_no_peer_cert",
            "true",
            "--tls-fail-if-no-peer-cert",
        )?;
    }
    if !cli.management_listen.is_empty() {
        let addrs: Vec<&str> = cli
            .management_listen
            .iter()
            .map(String::as_str)
            .filter(|a| *a != "none")
            .collect();
        config.set("management_listen", &addrs.join(","), "--management-listen")?;
    }
    if !cli.prometheus_listen.is_empty() {
        let addrs: Vec<&str> = cli
            .prometheus_listen
            .iter()
            .map(String::as_str)
            .filter(|a| *a != "none")
            .collect();
        config.set("prometheus_listen", &addrs.join(","), "--prometheus-listen")?;
    }
    if let Some(d) = &cli.data_dir {
        config.set("data_dir", &d.display().to_string(), "--data-dir")?;
    }
    if let Some(l) = &cli.log_level {
        config.set("log_level", l, "--log-level")?;
    }
    Ok((config, warnings))
}

/// Console and file logging, each with its own level (RabbitMQ's `log.console.level`,
/// `log.file.level`). Colour codes only for a person at a terminal, never into files or
/// container logs.
fn init_logging(config: &Config) -> Result<(), String> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let filter = |level: &str| {
        let level = if level.is_empty() {
            &config.log_level
        } else {
            level
        };
        EnvFilter::new(format!("warren={level}"))
    };
    let console = config.log_console.then(|| {
        tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(std::io::stdout().is_terminal())
            .with_filter(filter(&config.log_console_level))
    });
    let file = match &config.log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
            Some(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(false)
                    .with_writer(std::sync::Mutex::new(file))
                    .with_filter(filter(&config.log_file_level)),
            )
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(console)
        .with(file)
        .init();
    Ok(())
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

/// Wait for SIGINT or SIGTERM; on SIGHUP reload the TLS certificate and go on waiting.
async fn wait_for_signal(broker: &Broker) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => return,
                _ = int.recv() => return,
                _ = hup.recv() => match broker.reload_tls() {
                    Ok(true) => tracing::info!("SIGHUP: TLS certificate reloaded; new connections use it"),
                    Ok(false) => tracing::info!("SIGHUP: no amqps listener, nothing to reload"),
                    Err(e) => tracing::error!("SIGHUP: TLS reload refused, keeping the old certificate: {e}"),
                },
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = broker;
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (config, warnings) = match load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warren: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_logging(&config) {
        eprintln!("warren: {e}");
        return ExitCode::from(2);
    }
    for warning in warnings {
        tracing::warn!("{warning}");
    }
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
        let list = |addrs: &[SocketAddr]| {
            addrs
                .iter()
                .map(SocketAddr::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !broker.local_addrs().is_empty() {
            tracing::info!(
                "Warren {} listening for AMQP on {} (data dir {})",
                env!("CARGO_PKG_VERSION"),
                list(broker.local_addrs()),
                data_dir.display()
            );
        }
        if !broker.tls_addrs().is_empty() {
            tracing::info!(
                "Warren {} listening for AMQPS (TLS) on {} (data dir {})",
                env!("CARGO_PKG_VERSION"),
                list(broker.tls_addrs()),
                data_dir.display()
            );
        }
        if !broker.management_addrs().is_empty() {
            tracing::info!(
                "management API listening on {}",
                list(broker.management_addrs())
            );
        }
        // RabbitMQ's own lines, which container wait strategies (testcontainers' RabbitMQ
        // modules) and operators' scripts look for
        for addr in broker.local_addrs() {
            tracing::info!("started TCP listener on {addr}");
        }
        for addr in broker.tls_addrs() {
            tracing::info!("started TLS (SSL) listener on {addr}");
        }
        // RabbitMQ names each HTTP port once; Warren binds 0.0.0.0 and [::] apart, so the
        // same port would otherwise be announced twice.
        let ports = |addrs: &[SocketAddr]| {
            addrs
                .iter()
                .map(SocketAddr::port)
                .collect::<std::collections::BTreeSet<_>>()
        };
        for port in ports(broker.prometheus_addrs()) {
            tracing::info!("Prometheus metrics: HTTP (non-TLS) listener started on port {port}");
        }
        for port in ports(broker.management_addrs()) {
            tracing::info!("Management plugin: HTTP (non-TLS) listener started on port {port}");
        }
        tracing::info!("Server startup complete; 0 plugins started.");
        wait_for_signal(&broker).await;
        tracing::info!(
            "shutting down: closing {} connection(s)",
            broker.connection_count()
        );
        broker.shutdown().await;
        ExitCode::SUCCESS
    })
}
