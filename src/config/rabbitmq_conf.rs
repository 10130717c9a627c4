//! RabbitMQ's own configuration, read into Warren's `Config`: the sysctl-style
//! `rabbitmq.conf` (and a `conf.d/` directory of `*.conf`, as the official image reads) and
//! the `RABBITMQ_*` environment variables. Called by the binary before Warren's own
//! `WARREN_*` variables and flags, which therefore win.
//!
//! Three outcomes per key, never a fourth: a key that maps onto Warren sets the Warren key
//! (a bad value stops start-up naming the RabbitMQ key and line); a key RabbitMQ knows but
//! Warren does not act on comes back as a warning naming it; a key RabbitMQ's own schema
//! does not have stops start-up, as it stops RabbitMQ. It never reads advanced.config
//! (Erlang terms): that file is reported, not interpreted.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::{Config, ConfigError};

/// RabbitMQ 3.10.8's schema keys; `$x` segments match any one segment.
const RABBITMQ_KEYS: &str = include_str!("rabbitmq-3.10-keys.txt");

fn known_to_rabbitmq(key: &str) -> bool {
    let segments: Vec<&str> = key.split('.').collect();
    RABBITMQ_KEYS
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .any(|pattern| {
            let parts: Vec<&str> = pattern.split('.').collect();
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(p, s)| p.starts_with('$') || p == s)
        })
}

/// A conf file's name and text.
pub type ConfFile = (String, String);

/// One `key = value` line of a conf file, with where it came from.
#[derive(Debug, Clone)]
struct Setting {
    key: String,
    value: String,
    origin: String,
}

/// Split a conf file into settings: `#` starts a comment (also after a value, as in
/// cuttlefish), blank lines are skipped, a line without `=` is an error.
fn parse(text: &str, source: &str) -> Result<Vec<Setting>, ConfigError> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let origin = format!("{source} line {}", n + 1);
        let Some((key, value)) = line.split_once('=') else {
            return Err(ConfigError::File {
                path: origin,
                why: format!("'{line}' is not 'key = value'"),
            });
        };
        let value = value.trim();
        let value = value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .unwrap_or(value);
        out.push(Setting {
            key: key.trim().to_owned(),
            value: value.to_owned(),
            origin,
        });
    }
    Ok(out)
}

/// RabbitMQ's information units (`disk_free_limit.absolute = 2GB`): bare bytes, k/kiB/KiB,
/// kB/KB, M/MiB, MB, G/GiB, GB, T/TiB, TB.
pub fn information_unit(value: &str) -> Option<u64> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let multiplier: u64 = match unit {
        "" => 1,
        "k" | "K" | "kiB" | "KiB" => 1 << 10,
        "kB" | "KB" => 1_000,
        "m" | "M" | "MiB" => 1 << 20,
        "MB" => 1_000_000,
        "g" | "G" | "GiB" => 1 << 30,
        "GB" => 1_000_000_000,
        "t" | "T" | "TiB" => 1 << 40,
        "TB" => 1_000_000_000_000,
        _ => return None,
    };
    n.checked_mul(multiplier)
}

/// RabbitMQ's log levels onto tracing's.
fn log_level(value: &str) -> Option<&'static str> {
    Some(match value {
        "debug" => "debug",
        "info" | "notice" => "info",
        "warning" => "warn",
        "error" | "critical" | "alert" | "emergency" => "error",
        "none" => "off",
        _ => return None,
    })
}

fn flag(value: &str) -> Option<bool> {
    match value {
        "true" | "on" => Some(true),
        "false" | "off" => Some(false),
        _ => None,
    }
}

/// A listener value: a port alone (every interface, IPv4 and IPv6, as RabbitMQ), or
/// `ip:port` with the port after the last colon (`::1:5672` and `[::1]:5672` both work).
fn listener(value: &str) -> Option<Vec<SocketAddr>> {
    if let Ok(port) = value.parse::<u16>() {
        return Some(vec![
            SocketAddr::from(([0, 0, 0, 0], port)),
            SocketAddr::from(([0u16; 8], port)),
        ]);
    }
    let (ip, port) = value.rsplit_once(':')?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    Some(vec![SocketAddr::new(ip.parse().ok()?, port.parse().ok()?)])
}

/// The `ip`/`port` pair of an HTTP listener (`management.tcp.*`, `prometheus.tcp.*`).
fn http_listener(ip: Option<&str>, port: u16) -> Option<Vec<SocketAddr>> {
    match ip {
        Some(ip) => Some(vec![SocketAddr::new(ip.parse().ok()?, port)]),
        None => listener(&port.to_string()),
    }
}

fn addrs_text(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Apply RabbitMQ conf files, all taken together as RabbitMQ merges `rabbitmq.conf` with
/// `conf.d/*.conf` (later files win for the same key). Returns the warnings to log.
pub fn apply_files(config: &mut Config, files: &[ConfFile]) -> Result<Vec<String>, ConfigError> {
    let mut settings = Vec::new();
    for (source, text) in files {
        settings.extend(parse(text, source)?);
    }
    apply_settings(config, settings)
}

fn apply_settings(config: &mut Config, settings: Vec<Setting>) -> Result<Vec<String>, ConfigError> {
    let mut warnings = Vec::new();
    // The last line for a key wins, but listeners and lists gather every line.
    let mut by_key: BTreeMap<String, Setting> = BTreeMap::new();
    for s in settings {
        if !known_to_rabbitmq(&s.key) {
            return Err(ConfigError::UnknownKey {
                key: s.key.clone(),
                origin: format!("{}; RabbitMQ refuses it too", s.origin),
            });
        }
        by_key.insert(s.key.clone(), s);
    }
    let bad = |s: &Setting, why: String| ConfigError::BadValue {
        key: s.key.clone(),
        origin: s.origin.clone(),
        why,
    };
    // Set a Warren key, reporting a refusal under the RabbitMQ key that asked for it.
    let set = |config: &mut Config, s: &Setting, key: &str, value: &str| {
        config.set(key, value, &s.origin).map_err(|e| match e {
            ConfigError::BadValue { why, .. } => bad(s, why),
            other => other,
        })
    };
    let mut tcp = Vec::new();
    let mut ssl = Vec::new();
    let mut tcp_seen = false;
    let mut ssl_seen = false;
    let mut tls_versions = Vec::new();
    let mut tls_ciphers = Vec::new();
    let mut tags = Vec::new();
    let mut loopback = config.loopback_users.clone();
    let mut http: BTreeMap<&str, (Option<String>, Option<u16>)> = BTreeMap::new();
    for s in by_key.values() {
        let key = s.key.as_str();
        let v = s.value.as_str();
        let (head, last) = key.rsplit_once('.').unwrap_or(("", key));
        match key {
            "listeners.tcp" | "listeners.ssl" => {
                if v != "none" {
                    return Err(bad(s, format!("'{v}': only 'none' goes here")));
                }
                if key == "listeners.tcp" {
                    tcp_seen = true;
                } else {
                    ssl_seen = true;
                }
            }
            _ if head == "listeners.tcp" || head == "listeners.ssl" => {
                let addrs = listener(v)
                    .ok_or_else(|| bad(s, format!("'{v}' is not a port or ip:port")))?;
                if head == "listeners.tcp" {
                    tcp_seen = true;
                    tcp.extend(addrs);
                } else {
                    ssl_seen = true;
                    ssl.extend(addrs);
                }
            }
            "ssl_options.certfile" => set(config, s, "tls_cert", v)?,
            "ssl_options.keyfile" => set(config, s, "tls_key", v)?,
            "ssl_options.cacertfile" => set(config, s, "tls_ca", v)?,
            "ssl_options.verify" => match v {
                "verify_peer" => set(config, s, "tls_verify_peer", "true")?,
                "verify_none" => set(config, s, "tls_verify_peer", "false")?,
                _ => return Err(bad(s, format!("'{v}' is not verify_peer or verify_none"))),
            },
            "ssl_options.fail_if_no_peer_cert" => {
                let b = flag(v).ok_or_else(|| bad(s, format!("'{v}' is not true or false")))?;
                set(config, s, "tls_fail_if_no_peer_cert", &b.to_string())?
            }
            _ if head == "ssl_options.versions" => tls_versions.push(v.to_owned()),
            _ if head == "ssl_options.ciphers" => tls_ciphers.push(v.to_owned()),
            "ssl_cert_login_from" => match v {
                "common_name" => set(config, s, "ssl_cert_login_from", "common_name")?,
                "subject_alternative_name" | "subject_alt_name" => {
                    set(config, s, "ssl_cert_login_from", "subject_alternative_name")?
                }
                _ => {
                    return Err(bad(
                        s,
                        format!("'{v}' is not supported: Warren takes the user name from common_name or subject_alternative_name"),
                    ))
                }
            },
            "default_user" | "default_pass" | "default_vhost" | "heartbeat" | "frame_max"
            | "max_message_size" | "handshake_timeout" | "consumer_timeout" | "cluster_name" => {
                set(config, s, key, v)?
            }
            "channel_max" => {
                // RabbitMQ's 0 is "no limit", which the protocol caps at 65535.
                let v = if v == "0" { "65535" } else { v };
                set(config, s, "channel_max", v)?
            }
            "connection_max" => {
                let v = if v == "infinity" { "0" } else { v };
                set(config, s, "connection_max", v)?
            }
            "nodename" => set(config, s, "node_name", v)?,
            "product.name" => set(config, s, "product", v)?,
            "product.version" => set(config, s, "product_version", v)?,
            "default_permissions.configure" => set(config, s, "default_permissions_configure", v)?,
            "default_permissions.read" => set(config, s, "default_permissions_read", v)?,
            "default_permissions.write" => set(config, s, "default_permissions_write", v)?,
            _ if head == "default_user_tags" => {
                if flag(v).ok_or_else(|| bad(s, format!("'{v}' is not true or false")))? {
                    tags.push(last.to_owned());
                }
            }
            "loopback_users" => {
                if v != "none" {
                    return Err(bad(s, format!("'{v}': only 'none' goes here")));
                }
                loopback.clear();
            }
            _ if head == "loopback_users" => {
                let on = flag(v).ok_or_else(|| bad(s, format!("'{v}' is not true or false")))?;
                loopback.retain(|u| u != last);
                if on {
                    loopback.push(last.to_owned());
                }
            }
            "vm_memory_high_watermark.relative" => set(config, s, "vm_memory_high_watermark", v)?,
            "vm_memory_high_watermark.absolute" => {
                let n = information_unit(v)
                    .ok_or_else(|| bad(s, format!("'{v}' is not a size such as 2GB or 1024MiB")))?;
                set(config, s, "vm_memory_high_watermark_absolute", &n.to_string())?
            }
            "disk_free_limit.absolute" => {
                let n = information_unit(v)
                    .ok_or_else(|| bad(s, format!("'{v}' is not a size such as 2GB or 1024MiB")))?;
                set(config, s, "disk_free_limit", &n.to_string())?
            }
            "disk_free_limit.relative" => set(config, s, "disk_free_limit_relative", v)?,
            "load_definitions" | "management.load_definitions" | "definitions.local.path" => {
                set(config, s, "load_definitions", v)?
            }
            "definitions.import_backend" => {
                if v != "local_filesystem" && v != "rabbit_definitions_import_local_filesystem" {
                    return Err(bad(s, format!("'{v}' is not supported: Warren imports definitions from local files only")));
                }
            }
            "log.console" => {
                let b = flag(v).ok_or_else(|| bad(s, format!("'{v}' is not true or false")))?;
                set(config, s, "log_console", &b.to_string())?
            }
            "log.console.level" | "log.file.level" | "log.default.level" => {
                let level =
                    log_level(v).ok_or_else(|| bad(s, format!("'{v}' is not a log level")))?;
                let target = match key {
                    "log.console.level" => "log_console_level",
                    "log.file.level" => "log_file_level",
                    _ => "log_level",
                };
                set(config, s, target, level)?
            }
            "log.file" => {
                let path = match v {
                    "false" => String::new(),
                    path => match (&by_key.get("log.dir"), std::path::Path::new(path).is_absolute()) {
                        (Some(dir), false) => format!("{}/{path}", dir.value),
                        _ => path.to_owned(),
                    },
                };
                set(config, s, "log_file", &path)?
            }
            // RabbitMQ logs to a file by default, named after the node, in log.dir.
            "log.dir" if !by_key.contains_key("log.file") => {
                let node = by_key
                    .get("nodename")
                    .map(|n| n.value.clone())
                    .unwrap_or_else(|| config.node_name());
                set(config, s, "log_file", &format!("{v}/{node}.log"))?
            }
            "log.dir" => {} // read with log.file
            "management.tcp.port" | "management.listener.port" | "prometheus.tcp.port" => {
                let port: u16 = v
                    .parse()
                    .map_err(|_| bad(s, format!("'{v}' is not a port")))?;
                http.entry(head_of(key)).or_default().1 = Some(port);
            }
            "management.tcp.ip" | "management.listener.ip" | "prometheus.tcp.ip" => {
                http.entry(head_of(key)).or_default().0 = Some(v.to_owned());
            }
            _ => warnings.push(format!(
                "{}: '{}' is a RabbitMQ setting Warren does not act on; it is ignored",
                s.origin, s.key
            )),
        }
    }
    let origin = "rabbitmq.conf";
    if tcp_seen {
        config.set("amqp_listen", &addrs_text(&tcp), origin)?;
    }
    if ssl_seen {
        config.set("amqps_listen", &addrs_text(&ssl), origin)?;
    }
    if !tls_versions.is_empty() {
        config.set(
            "tls_versions",
            &tls_versions.join(","),
            "ssl_options.versions",
        )?;
    }
    if !tls_ciphers.is_empty() {
        config.set("tls_ciphers", &tls_ciphers.join(","), "ssl_options.ciphers")?;
    }
    if !tags.is_empty() {
        config.set("default_user_tags", &tags.join(","), "default_user_tags")?;
    }
    config.loopback_users = loopback;
    for (which, (ip, port)) in http {
        let (key, default_port) = match which {
            "management" => ("management_listen", 15672),
            _ => ("prometheus_listen", 15692),
        };
        let addrs =
            http_listener(ip.as_deref(), port.unwrap_or(default_port)).ok_or_else(|| {
                ConfigError::BadValue {
                    key: format!("{which}.tcp.ip"),
                    origin: origin.into(),
                    why: format!("'{}' is not an IP address", ip.clone().unwrap_or_default()),
                }
            })?;
        config.set(key, &addrs_text(&addrs), origin)?;
    }
    Ok(warnings)
}

/// `management.tcp.port` and the older `management.listener.port` are one listener.
fn head_of(key: &str) -> &'static str {
    if key.starts_with("management.") {
        "management"
    } else {
        "prometheus"
    }
}

/// The `RABBITMQ_*` variables the official image and packages read. Returns the warnings
/// for the ones Warren does not act on. Variables the image sets for itself (version, home,
/// signing key) are not the user's and pass without a word.
pub fn apply_env(
    config: &mut Config,
    vars: &[(String, String)],
) -> Result<Vec<String>, ConfigError> {
    let mut warnings = Vec::new();
    let get = |name: &str| {
        vars.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let origin = |name: &str| format!("environment variable {name}");
    if let Some(v) = get("RABBITMQ_NODENAME") {
        config.set("node_name", v, &origin("RABBITMQ_NODENAME"))?;
    }
    match (get("RABBITMQ_NODE_IP_ADDRESS"), get("RABBITMQ_NODE_PORT")) {
        (None, None) => {}
        (ip, port) => {
            let port = port.unwrap_or("5672");
            let value = match ip {
                Some(ip) if !ip.is_empty() => format!("{ip}:{port}"),
                _ => port.to_owned(),
            };
            let addrs = listener(&value).ok_or_else(|| ConfigError::BadValue {
                key: "RABBITMQ_NODE_IP_ADDRESS/RABBITMQ_NODE_PORT".into(),
                origin: "environment".into(),
                why: format!("'{value}' is not an address and port"),
            })?;
            config.set("amqp_listen", &addrs_text(&addrs), "RABBITMQ_NODE_PORT")?;
        }
    }
    if let Some(dir) = get("RABBITMQ_MNESIA_DIR") {
        config.set("data_dir", dir, &origin("RABBITMQ_MNESIA_DIR"))?;
    } else if let Some(base) = get("RABBITMQ_MNESIA_BASE") {
        let dir = format!("{base}/{}", config.node_name());
        config.set("data_dir", &dir, &origin("RABBITMQ_MNESIA_BASE"))?;
    }
    match get("RABBITMQ_LOGS") {
        Some("-") => config.set("log_file", "", &origin("RABBITMQ_LOGS"))?,
        Some(path) => {
            let path = match get("RABBITMQ_LOG_BASE") {
                Some(base) if !std::path::Path::new(path).is_absolute() => format!("{base}/{path}"),
                _ => path.to_owned(),
            };
            config.set("log_file", &path, &origin("RABBITMQ_LOGS"))?;
        }
        // RabbitMQ's default file, named after the node, in the given directory.
        None => {
            if let Some(base) = get("RABBITMQ_LOG_BASE") {
                let path = format!("{base}/{}.log", config.node_name());
                config.set("log_file", &path, &origin("RABBITMQ_LOG_BASE"))?;
            }
        }
    }
    const HONOURED: &[&str] = &[
        "RABBITMQ_NODENAME",
        "RABBITMQ_NODE_IP_ADDRESS",
        "RABBITMQ_NODE_PORT",
        "RABBITMQ_MNESIA_DIR",
        "RABBITMQ_MNESIA_BASE",
        "RABBITMQ_LOGS",
        "RABBITMQ_LOG_BASE",
        "RABBITMQ_CONFIG_FILE",
        "RABBITMQ_CONFIG_FILES",
        "RABBITMQ_ADVANCED_CONFIG_FILE",
        "RABBITMQ_DEFAULT_USER",
        "RABBITMQ_DEFAULT_PASS",
        "RABBITMQ_DEFAULT_VHOST",
        // the image's own bookkeeping, not settings
        "RABBITMQ_VERSION",
        "RABBITMQ_HOME",
        "RABBITMQ_PGP_KEY_ID",
        "RABBITMQ_DATA_DIR",
        "RABBITMQ_LOGS_DIR",
    ];
    for (name, _) in vars {
        if name.starts_with("RABBITMQ_") && !HONOURED.contains(&name.as_str()) {
            warnings.push(format!(
                "environment variable {name} is a RabbitMQ setting Warren does not act on; it is ignored"
            ));
        }
    }
    Ok(warnings)
}

/// The files RabbitMQ would read: `RABBITMQ_CONFIG_FILE` (with or without its `.conf`
/// suffix) and every `*.conf` in `RABBITMQ_CONFIG_FILES`, in name order. A file that is not
/// there is reported and skipped, as RabbitMQ reports it `(not found)` and starts.
pub fn read_files(vars: &[(String, String)]) -> Result<(Vec<ConfFile>, Vec<String>), ConfigError> {
    let get = |name: &str| vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let mut files = Vec::new();
    let mut notes = Vec::new();
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            why: e.to_string(),
        })
    };
    if let Some(file) = get("RABBITMQ_CONFIG_FILE") {
        let plain = std::path::PathBuf::from(&file);
        let with_suffix = std::path::PathBuf::from(format!("{file}.conf"));
        let path = if plain.extension().is_some_and(|e| e == "conf") || plain.is_file() {
            plain
        } else {
            with_suffix
        };
        if path.is_file() {
            files.push((path.display().to_string(), read(&path)?));
        } else {
            notes.push(format!("config file {} (not found)", path.display()));
        }
    }
    if let Some(dir) = get("RABBITMQ_CONFIG_FILES") {
        let path = std::path::Path::new(&dir);
        if path.is_dir() {
            let mut names: Vec<std::path::PathBuf> = std::fs::read_dir(path)
                .map_err(|e| ConfigError::File {
                    path: dir.clone(),
                    why: e.to_string(),
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "conf"))
                .collect();
            names.sort();
            for p in names {
                files.push((p.display().to_string(), read(&p)?));
            }
        } else if path.is_file() {
            files.push((path.display().to_string(), read(path)?));
        }
    }
    if let Some(advanced) = get("RABBITMQ_ADVANCED_CONFIG_FILE") {
        let path = std::path::Path::new(&advanced);
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            notes.push(format!(
                "{advanced}: advanced.config (Erlang terms) is not read by Warren; move its settings to rabbitmq.conf or warren.toml"
            ));
        }
    }
    Ok((files, notes))
}

#[cfg(test)]
mod tests;
