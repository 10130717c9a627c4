//! rabbitmqctl's and rabbitmq-diagnostics' commands for the objects the shop's scripts and
//! healthchecks look at: queues, exchanges, bindings, connections, channels, consumers,
//! definitions, and the liveness checks. Same names, same columns (info items), same
//! output; each is one or a few management API calls.

use std::time::{Duration, Instant};

use clap::Subcommand;
use serde_json::{json, Value};

use crate::http::{Api, ApiFailure};
use crate::Out;

#[derive(Subcommand, Debug)]
#[command(rename_all = "snake_case")]
pub enum OpsCommand {
    /// Queues and their info items, e.g. list_queues name messages consumers.
    ListQueues {
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        items: Vec<String>,
    },
    ListExchanges {
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        items: Vec<String>,
    },
    ListBindings {
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        items: Vec<String>,
    },
    ListConnections {
        items: Vec<String>,
    },
    ListChannels {
        items: Vec<String>,
    },
    ListConsumers {
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        items: Vec<String>,
    },
    /// Close a connection (by the name list_connections name shows) with a reason.
    CloseConnection {
        connection: String,
        explanation: String,
    },
    PurgeQueue {
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        queue: String,
    },
    DeleteQueue {
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        queue: String,
        #[arg(short = 'e', long = "if-empty")]
        if_empty: bool,
        #[arg(short = 'u', long = "if-unused")]
        if_unused: bool,
    },
    /// Write every definition as JSON to a file, or to standard output with "-".
    ExportDefinitions {
        path: String,
    },
    ImportDefinitions {
        path: String,
    },
    /// Wait until the broker answers (default 300 s).
    AwaitStartup {
        #[arg(short = 't', long = "timeout", default_value_t = 300)]
        timeout: u64,
    },
    Ping,
    CheckRunning,
    CheckLocalAlarms,
    CheckAlarms,
    CheckPortConnectivity,
    Status,
}

/// The info items each list command knows, the first ones its default columns.
const QUEUE_ITEMS: &[&str] = &[
    "name",
    "messages",
    "durable",
    "auto_delete",
    "exclusive",
    "arguments",
    "policy",
    "messages_ready",
    "messages_unacknowledged",
    "message_bytes",
    "message_bytes_ready",
    "message_bytes_unacknowledged",
    "consumers",
    "state",
    "type",
    "vhost",
    "node",
];
const EXCHANGE_ITEMS: &[&str] = &[
    "name",
    "type",
    "durable",
    "auto_delete",
    "internal",
    "arguments",
    "policy",
    "vhost",
];
const BINDING_ITEMS: &[&str] = &[
    "source_name",
    "source_kind",
    "destination_name",
    "destination_kind",
    "routing_key",
    "arguments",
    "vhost",
];
const CONNECTION_ITEMS: &[&str] = &[
    "user",
    "peer_host",
    "peer_port",
    "state",
    "name",
    "vhost",
    "host",
    "port",
    "ssl",
    "protocol",
    "channels",
    "channel_max",
    "frame_max",
    "timeout",
    "connected_at",
    "client_properties",
    "auth_mechanism",
    "node",
];
const CHANNEL_ITEMS: &[&str] = &[
    "pid",
    "user",
    "consumer_count",
    "messages_unacknowledged",
    "name",
    "number",
    "connection",
    "vhost",
    "transactional",
    "confirm",
    "messages_unconfirmed",
    "messages_uncommitted",
    "acks_uncommitted",
    "prefetch_count",
    "global_prefetch_count",
    "state",
];
const CONSUMER_ITEMS: &[&str] = &[
    "queue_name",
    "channel_pid",
    "consumer_tag",
    "ack_required",
    "prefetch_count",
    "active",
    "arguments",
];

/// The columns asked for, or the command's defaults; an unknown item is refused.
fn columns<'a>(
    asked: &'a [String],
    known: &'a [&'a str],
    defaults: usize,
) -> Result<Vec<&'a str>, ApiFailure> {
    if asked.is_empty() {
        return Ok(known[..defaults].to_vec());
    }
    let unknown: Vec<&str> = asked
        .iter()
        .map(String::as_str)
        .filter(|a| !known.contains(a))
        .collect();
    if !unknown.is_empty() {
        return Err(ApiFailure::Usage(format!(
            "Info key(s) {} are not supported. Supported keys: {}",
            unknown.join(","),
            known.join(", ")
        )));
    }
    Ok(asked.iter().map(String::as_str).collect())
}

/// A value as rabbitmqctl prints it in a table: strings bare, arguments as Erlang-ish
/// `[{"key",value}]` pairs.
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Object(map) => {
            let pairs: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{{\"{k}\",{}}}", v))
                .collect();
            format!("[{}]", pairs.join(","))
        }
        other => other.to_string(),
    }
}

/// Print rows with the chosen columns, as a table or as JSON objects of those columns.
fn print(out: &Out, cols: &[&str], rows: &[Value], field: impl Fn(&Value, &str) -> Value) {
    let projected: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut o = serde_json::Map::new();
            for c in cols {
                o.insert((*c).to_owned(), field(r, c));
            }
            Value::Object(o)
        })
        .collect();
    out.table(cols, &projected, |r, h| cell(&r[h]));
}

pub fn run(api: &Api, out: &Out, command: OpsCommand) -> Result<(), ApiFailure> {
    match command {
        OpsCommand::ListQueues { vhost, items } => {
            let cols = columns(&items, QUEUE_ITEMS, 2)?;
            out.info("Timeout: 60.0 seconds ...".into());
            out.info(format!("Listing queues for vhost {vhost} ..."));
            let rows = api.list(&["queues", &vhost])?;
            print(out, &cols, &rows, |q, c| q[c].clone());
        }
        OpsCommand::ListExchanges { vhost, items } => {
            let cols = columns(&items, EXCHANGE_ITEMS, 2)?;
            out.info(format!("Listing exchanges for vhost {vhost} ..."));
            let rows = api.list(&["exchanges", &vhost])?;
            print(out, &cols, &rows, |x, c| x[c].clone());
        }
        OpsCommand::ListBindings { vhost, items } => {
            let cols = columns(&items, BINDING_ITEMS, 6)?;
            out.info(format!("Listing bindings for vhost {vhost}..."));
            let rows = api.list(&["bindings", &vhost])?;
            print(out, &cols, &rows, |b, c| match c {
                "source_name" => b["source"].clone(),
                "source_kind" => json!("exchange"),
                "destination_name" => b["destination"].clone(),
                "destination_kind" => b["destination_type"].clone(),
                other => b[other].clone(),
            });
        }
        OpsCommand::ListConnections { items } => {
            let cols = columns(&items, CONNECTION_ITEMS, 4)?;
            out.info("Listing connections ...".into());
            let rows = api.list(&["connections"])?;
            print(out, &cols, &rows, |x, c| x[c].clone());
        }
        OpsCommand::ListChannels { items } => {
            let cols = columns(&items, CHANNEL_ITEMS, 4)?;
            out.info("Listing channels ...".into());
            let rows = api.list(&["channels"])?;
            // Warren's channels have no Erlang pid: their name identifies them
            print(out, &cols, &rows, |ch, c| match c {
                "pid" => ch["name"].clone(),
                "connection" => ch["connection_details"]["name"].clone(),
                other => ch[other].clone(),
            });
        }
        OpsCommand::ListConsumers { vhost, items } => {
            let cols = columns(&items, CONSUMER_ITEMS, 7)?;
            out.info(format!("Listing consumers in vhost {vhost} ..."));
            let rows = api.list(&["consumers", &vhost])?;
            print(out, &cols, &rows, |x, c| match c {
                "queue_name" => x["queue"]["name"].clone(),
                "channel_pid" => x["channel_details"]["name"].clone(),
                other => x[other].clone(),
            });
        }
        OpsCommand::CloseConnection {
            connection,
            explanation,
        } => {
            out.info(format!(
                "Closing connection {connection}, reason: {explanation}..."
            ));
            api.request(
                "DELETE",
                &["connections", &connection],
                "",
                Some(("X-Reason", &explanation)),
                None,
            )?
            .ok_or_else(|| ApiFailure::Data(format!("connection {connection} not found")))?;
        }
        OpsCommand::PurgeQueue { vhost, queue } => {
            out.info(format!("Purging queue '{queue}' in vhost '{vhost}' ..."));
            api.delete(&["queues", &vhost, &queue, "contents"])?
                .ok_or_else(|| ApiFailure::Data("not_found".into()))?;
        }
        OpsCommand::DeleteQueue {
            vhost,
            queue,
            if_empty,
            if_unused,
        } => {
            let condition = match (if_empty, if_unused) {
                (true, true) => " if queue is empty and has no consumers",
                (true, false) => " if queue is empty",
                (false, true) => " if queue has no consumers",
                (false, false) => "",
            };
            out.info(format!(
                "Deleting queue '{queue}' on vhost '{vhost}'{condition} ..."
            ));
            let q = api
                .get(&["queues", &vhost, &queue])?
                .ok_or_else(|| ApiFailure::Data("Queue not found".into()))?;
            let mut query = Vec::new();
            if if_empty {
                query.push("if-empty=true");
            }
            if if_unused {
                query.push("if-unused=true");
            }
            api.request(
                "DELETE",
                &["queues", &vhost, &queue],
                &query.join("&"),
                None,
                None,
            )?
            .ok_or_else(|| ApiFailure::Data("Queue not found".into()))?;
            out.info(format!(
                "Queue was successfully deleted with {} ready messages",
                q["messages_ready"].as_u64().unwrap_or(0)
            ));
        }
        OpsCommand::ExportDefinitions { path } => {
            let defs = api.get(&["definitions"])?.unwrap_or(Value::Null);
            let text = defs.to_string();
            if path == "-" {
                println!("{text}");
            } else {
                out.info(format!(
                    "Exporting definitions in JSON to a file at \"{path}\" ..."
                ));
                std::fs::write(&path, text)
                    .map_err(|e| ApiFailure::Data(format!("cannot write {path}: {e}")))?;
            }
        }
        OpsCommand::ImportDefinitions { path } => {
            out.info(format!(
                "Importing definitions in JSON from a file at \"{path}\" ..."
            ));
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ApiFailure::Data(format!("cannot read {path}: {e}")))?;
            let defs: Value = serde_json::from_str(&text)
                .map_err(|e| ApiFailure::Data(format!("{path} is not JSON: {e}")))?;
            api.post(&["definitions"], defs)?;
            out.info("Successfully started definition import. This process is asynchronous and can take some time.".into());
        }
        OpsCommand::AwaitStartup { timeout } => {
            let deadline = Instant::now() + Duration::from_secs(timeout);
            loop {
                match api.get(&["health", "checks", "virtual-hosts"]) {
                    Ok(Some(_)) => break,
                    Err(ApiFailure::NotAuthorised(e)) => return Err(ApiFailure::NotAuthorised(e)),
                    _ if Instant::now() >= deadline => {
                        return Err(ApiFailure::Data(format!(
                            "the broker did not start within {timeout} s"
                        )))
                    }
                    _ => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        }
        OpsCommand::Ping => {
            let node = node_name(api)?;
            out.info(format!("Will ping {node}. This only checks if the OS process is running and registered with epmd. Timeout: 60000 ms."));
            println!("Ping succeeded");
        }
        OpsCommand::CheckRunning => {
            let node = node_name(api)?;
            out.info(format!(
                "Checking if RabbitMQ is running on node {node} ..."
            ));
            api.get(&["health", "checks", "virtual-hosts"])?;
            println!("RabbitMQ on node {node} is fully booted and running");
        }
        OpsCommand::CheckLocalAlarms | OpsCommand::CheckAlarms => {
            let node = node_name(api)?;
            out.info(format!(
                "Asking node {node} to report any local resource alarms ..."
            ));
            let nodes = api.list(&["nodes"])?;
            let raised: Vec<&str> = nodes.iter().flat_map(raised_alarms).collect();
            if raised.is_empty() {
                println!("Node {node} reported no local alarms");
            } else {
                return Err(ApiFailure::Data(format!(
                    "Node {node} reported alarms: {}",
                    raised.join(", ")
                )));
            }
        }
        OpsCommand::CheckPortConnectivity => {
            let node = node_name(api)?;
            out.info(format!(
                "Testing TCP connections to all active listeners on node {node} ..."
            ));
            let overview = api.get(&["overview"])?.unwrap_or(Value::Null);
            // As RabbitMQ's CLI: each listening port is tried once, over IPv4 and then IPv6,
            // so a [::] listener in a container without IPv6 (Docker's default) does not
            // fail a port that 0.0.0.0 serves.
            let mut tries: std::collections::BTreeMap<u16, Vec<std::net::IpAddr>> =
                Default::default();
            for l in overview["listeners"].as_array().into_iter().flatten() {
                let port = l["port"].as_u64().unwrap_or(0) as u16;
                let hosts = tries.entry(port).or_default();
                match l["ip_address"].as_str().unwrap_or("0.0.0.0") {
                    "0.0.0.0" | "::" => hosts.extend([
                        std::net::IpAddr::from(std::net::Ipv4Addr::LOCALHOST),
                        std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
                    ]),
                    other => hosts.extend(other.parse::<std::net::IpAddr>().ok()),
                }
            }
            let mut ports = Vec::new();
            let mut failed = Vec::new();
            for (port, mut hosts) in tries {
                hosts.sort_by_key(|ip| (ip.is_ipv6(), *ip));
                hosts.dedup();
                let mut errors = Vec::new();
                let reached = hosts.iter().any(|ip| {
                    let addr = std::net::SocketAddr::new(*ip, port);
                    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                        .map_err(|e| errors.push(format!("{addr}: {e}")))
                        .is_ok()
                });
                if reached {
                    ports.push(port);
                } else {
                    failed.extend(errors);
                }
            }
            if !failed.is_empty() {
                return Err(ApiFailure::Data(format!(
                    "Connection to ports failed: {}",
                    failed.join(", ")
                )));
            }
            let list: Vec<String> = ports.iter().map(u16::to_string).collect();
            println!(
                "Successfully connected to ports {} on node {node}.",
                list.join(", ")
            );
        }
        OpsCommand::Status => {
            let overview = api.get(&["overview"])?.unwrap_or(Value::Null);
            let node = overview["node"].as_str().unwrap_or_default().to_owned();
            let n = api.get(&["nodes", &node])?.unwrap_or(Value::Null);
            out.info(format!("Status of node {node} ..."));
            println!("Runtime\n");
            println!("OS PID: {}", cell(&n["os_pid"]));
            println!(
                "Uptime (seconds): {}",
                n["uptime"].as_u64().unwrap_or(0) / 1000
            );
            println!("RabbitMQ version: {}", cell(&overview["rabbitmq_version"]));
            println!("Node name: {node}");
            println!(
                "Product: {} {}",
                cell(&overview["product_name"]),
                cell(&overview["product_version"])
            );
            println!("\nAlarms\n");
            let alarms = raised_alarms(&n);
            println!(
                "{}",
                if alarms.is_empty() {
                    "(none)".to_owned()
                } else {
                    alarms.join(", ")
                }
            );
            println!("\nMemory\n");
            println!("Total memory used: {} bytes", cell(&n["mem_used"]));
            println!("Memory high watermark: {} bytes", cell(&n["mem_limit"]));
            println!("\nFree Bytes\n");
            println!("Free disk space: {} bytes", cell(&n["disk_free"]));
            println!(
                "Free disk space low watermark: {} bytes",
                cell(&n["disk_free_limit"])
            );
            println!("\nFile Descriptors\n");
            println!(
                "Total: {}, limit: {}",
                cell(&n["fd_used"]),
                cell(&n["fd_total"])
            );
            println!("\nListeners\n");
            for l in overview["listeners"].as_array().into_iter().flatten() {
                println!(
                    "Interface: {}, port: {}, protocol: {}",
                    cell(&l["ip_address"]),
                    cell(&l["port"]),
                    cell(&l["protocol"])
                );
            }
        }
    }
    Ok(())
}

/// The resource alarms a node (from `/api/nodes`) has raised.
fn raised_alarms(node: &Value) -> Vec<&'static str> {
    [("mem_alarm", "memory"), ("disk_free_alarm", "disk")]
        .into_iter()
        .filter(|(k, _)| node[*k] == json!(true))
        .map(|(_, name)| name)
        .collect()
}

fn node_name(api: &Api) -> Result<String, ApiFailure> {
    let overview = api.get(&["overview"])?.unwrap_or(Value::Null);
    Ok(overview["node"].as_str().unwrap_or_default().to_owned())
}
