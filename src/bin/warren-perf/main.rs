//! `warren-perf`: a load generator for any AMQP 0-9-1 broker (Warren or RabbitMQ), in the
//! spirit of RabbitMQ's PerfTest. Single-threaded on purpose: on a small machine the tool
//! must leave the cores to the broker it measures.
//!
//! ```text
//! warren-perf throughput --url amqp://guest:guest@127.0.0.1:5672/%2F --size 100 --broker-pid PID
//! ```

mod client;
mod deadletter;
mod delayed;
mod extensions;
mod fleet;
mod percentile;
mod sample;
mod scenarios;
mod soak;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scenario {
    /// producers -> one queue -> consumers; published and consumed msg/s
    Throughput,
    /// persistent messages to a durable queue with publisher confirms
    Confirms,
    /// fixed publish rate, timestamp in the body, end-to-end percentiles
    Latency,
    /// one publisher to a fanout exchange with --queues bound queues and consumers
    Fanout,
    /// open and hold --connections connections with a channel each
    Connections,
    /// fill a queue with --messages messages with no consumer, then drain it
    Backlog,
    /// producers -> queue with x-message-ttl 0 -> dead-letter exchange -> consumed queue
    DeadletterTtl,
    /// producers -> work queue whose consumer rejects each message -> dead-letter
    /// exchange -> consumed queue
    DeadletterReject,
    /// --producers and --consumers connections churning (open, publish with confirms or
    /// consume and ack, close) for --duration; checks every confirmed message is acked once
    Soak,
    /// an x-delayed-message exchange: --messages pending delays (RSS, publish rate),
    /// then how late 10,000 messages due in 1-2 s arrive
    Delayed,
    /// request/reply round trips over direct reply-to (--producers clients, one server)
    Rpc,
    /// a topic exchange with --bindings wildcard bindings over --queues queues
    Topic,
    /// --connections connections, each consuming its own queue: RSS per connection idle,
    /// then CPU with each publishing (10 msg/s each, or --rate in total)
    Fleet,
}

#[derive(Parser, Debug)]
#[command(
    name = "warren-perf",
    version,
    about = "Load generator for AMQP 0-9-1 brokers"
)]
struct Cli {
    scenario: Scenario,
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2F")]
    url: String,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 100)]
    size: usize,
    #[arg(long, default_value_t = 1)]
    producers: usize,
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Measured seconds (after a half-second warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Total publish rate in msg/s (0 = unlimited; latency defaults to 10000).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    #[arg(long, default_value_t = 200)]
    prefetch: u16,
    /// Unconfirmed publishes per producer channel (0 = no confirms; confirms defaults to 100).
    #[arg(long)]
    confirm: Option<usize>,
    /// Channels per producer and per consumer connection: each channel publishes in turn
    /// (with its own confirm window), or consumes with its own prefetch, as PerfTest's
    /// channels per connection.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=2047))]
    channels: u16,
    /// delivery_mode 2 and a durable queue (confirms implies it).
    #[arg(long)]
    persistent: bool,
    /// Queues for the fanout scenario.
    #[arg(long, default_value_t = 10)]
    queues: usize,
    /// Connections for the connections scenario.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Bindings for the topic scenario.
    #[arg(long, default_value_t = 10_000)]
    bindings: usize,
    /// Messages for the backlog scenario.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// backlog: fill and leave the messages in the queue (for a restart test).
    #[arg(long)]
    keep: bool,
    /// backlog: only drain what is already in the queue.
    #[arg(long)]
    drain_only: bool,
    /// Consumers acknowledge every N messages (1 = each on its own, as most applications
    /// do; default half the prefetch, with `multiple`).
    #[arg(long)]
    ack_every: Option<u16>,
    /// One socket write per publish, as client libraries write, instead of batching up
    /// to 64 publishes per write.
    #[arg(long)]
    write_per_publish: bool,
    /// Broker process id: sample its CPU and RSS.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Print one JSON object instead of the text summary.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let url = match client::Url::parse(&cli.url) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("warren-perf: {e}");
            return ExitCode::from(2);
        }
    };
    let confirms = matches!(cli.scenario, Scenario::Confirms);
    let opts = scenarios::Opts {
        url,
        size: cli.size,
        producers: cli.producers,
        consumers: cli.consumers,
        duration: Duration::from_secs_f64(cli.duration),
        rate: cli.rate,
        prefetch: cli.prefetch,
        ack_every: cli
            .ack_every
            .map_or((cli.prefetch / 2).max(1), |n| n.max(1)),
        write_per_publish: cli.write_per_publish,
        confirm: cli.confirm.unwrap_or(if confirms { 100 } else { 0 }),
        channels: cli.channels,
        persistent: cli.persistent || confirms,
        queues: cli.queues,
        connections: cli.connections,
        messages: cli.messages,
        keep: cli.keep,
        drain_only: cli.drain_only,
        broker: sample::Probe::broker(cli.broker_pid),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("warren-perf: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = tokio::task::LocalSet::new();
    let name = format!("{:?}", cli.scenario).to_lowercase();
    let result = local.block_on(&runtime, async move {
        match cli.scenario {
            Scenario::Throughput => scenarios::throughput(opts, "throughput").await,
            Scenario::Confirms => scenarios::throughput(opts, "confirms").await,
            Scenario::Latency => scenarios::latency(opts).await,
            Scenario::Fanout => scenarios::fanout(opts).await,
            Scenario::Connections => scenarios::connections(opts).await,
            Scenario::Backlog => scenarios::backlog(opts).await,
            Scenario::DeadletterTtl => deadletter::deadletter(opts, false).await,
            Scenario::DeadletterReject => deadletter::deadletter(opts, true).await,
            Scenario::Soak => soak::soak(opts).await,
            Scenario::Delayed => delayed::delayed(opts).await,
            Scenario::Rpc => extensions::rpc(opts).await,
            Scenario::Topic => extensions::topic(opts, cli.bindings).await,
            Scenario::Fleet => fleet::fleet(opts).await,
        }
    });
    match result {
        Ok(results) => {
            if cli.json {
                let fields: Vec<String> = results
                    .iter()
                    .map(|(k, v)| format!("\"{k}\": {v:.3}"))
                    .collect();
                println!("{{\"scenario\": \"{name}\", {}}}", fields.join(", "));
            } else {
                println!("{name}:");
                for (k, v) in &results {
                    println!("  {k:<30} {v:>14.2}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("warren-perf: {name} failed: {e}");
            ExitCode::FAILURE
        }
    }
}
