//! Typed configuration. Every setting has one key, used alike in the TOML file, as a
//! `WARREN_<KEY>` environment variable and (for some) as a flag; precedence is
//! defaults < file < environment < flags. An unknown key or a bad value is an error that
//! names it; start-up stops. `config/warren.toml` documents every key with its default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub mod rabbitmq_conf;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown configuration key '{key}' (from {origin})")]
    UnknownKey { key: String, origin: String },
    #[error("bad value for '{key}' (from {origin}): {why}")]
    BadValue {
        key: String,
        origin: String,
        why: String,
    },
    #[error("cannot read config file {path}: {why}")]
    File { path: String, why: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Plain AMQP listeners.
    pub amqp_listen: Vec<SocketAddr>,
    pub data_dir: PathBuf,
    pub log_level: String,
    pub default_user: String,
    pub default_pass: String,
    pub default_vhost: String,
    /// Users that may only log in from a loopback address.
    pub loopback_users: Vec<String>,
    pub channel_max: u16,
    pub frame_max: u32,
    /// Seconds; 0 disables heartbeats unless the client asks for them.
    pub heartbeat: u16,
    pub max_message_size: u64,
    /// Milliseconds a new socket has to complete the AMQP handshake.
    pub handshake_timeout: u64,
    /// Milliseconds a delivery may stay unacknowledged before its channel is closed with
    /// 406, as RabbitMQ's `consumer_timeout` (default 30 minutes); 0 turns it off.
    pub consumer_timeout: u64,
    /// For test suites: TTLs, queue expiry and the consumer timeout follow a clock that
    /// stands still until advanced (`Broker::advance_clock`, `POST /api/clock/advance`).
    pub manual_clock: bool,
    /// The `product` and `version` server properties. Clients (kombu, amqplib) read them
    /// to pick RabbitMQ-specific behaviour, so the defaults name RabbitMQ's.
    pub product: String,
    pub product_version: String,
    pub cluster_name: String,
    /// Bytes of ready message bodies one durable queue keeps in memory; beyond it,
    /// persistent messages stay in the store until they near the head of the queue.
    pub queue_ram_limit: u64,
    /// Bytes of the store's page cache.
    pub store_cache_size: u64,
    /// Memory alarm: publishers are blocked above this fraction of total RAM...
    pub vm_memory_high_watermark: f64,
    /// ...or above this many bytes when non-zero (RabbitMQ's `.absolute`).
    pub vm_memory_high_watermark_absolute: u64,
    /// Disk alarm: publishers are blocked while the data dir's filesystem has fewer free
    /// bytes than this (RabbitMQ's `disk_free_limit.absolute`, default 50 MB)...
    pub disk_free_limit: u64,
    /// ...or than this fraction of total RAM, when non-zero (`disk_free_limit.relative`).
    pub disk_free_limit_relative: f64,
    /// Most client connections at once (0 = no limit); more are closed on accept.
    pub connection_max: u64,
    /// Most connections per vhost (0 = no limit): 530 for one more.
    pub vhost_max_connections: u64,
    /// Most queues per vhost (0 = no limit): 406 for one more.
    pub vhost_max_queues: u64,
    /// Most consumers per channel (0 = no limit): 530 for one more.
    pub consumer_max_per_channel: u64,
    /// AMQP over TLS listeners (amqps); need `tls_cert` and `tls_key`.
    pub amqps_listen: Vec<SocketAddr>,
    /// The management HTTP API (RabbitMQ's paths); empty turns it off.
    pub management_listen: Vec<SocketAddr>,
    /// Prometheus metrics (`/metrics`, RabbitMQ's port 15692); empty turns it off.
    pub prometheus_listen: Vec<SocketAddr>,
    /// PEM certificate chain and private key of the amqps listeners.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle that client certificates are verified against.
    pub tls_ca: Option<PathBuf>,
    /// Ask clients for a certificate and verify it against `tls_ca` (RabbitMQ's verify_peer).
    pub tls_verify_peer: bool,
    /// With `tls_verify_peer`: refuse clients that send no certificate.
    pub tls_fail_if_no_peer_cert: bool,
    /// "tlsv1.2" and/or "tlsv1.3"; older versions are never offered.
    pub tls_versions: Vec<String>,
    /// Cipher suites by IANA/rustls or OpenSSL name; empty means rustls' safe defaults.
    pub tls_ciphers: Vec<String>,
    /// Where SASL EXTERNAL takes the user name: common_name or subject_alternative_name.
    pub ssl_cert_login_from: String,
    /// A definitions file (RabbitMQ's format) imported at every start, as RabbitMQ's
    /// `load_definitions`.
    pub load_definitions: Option<PathBuf>,
    /// The node's name in the management API and metrics (RabbitMQ's `nodename`,
    /// `RABBITMQ_NODENAME`); empty means `warren@<cluster_name>`.
    pub node_name: String,
    /// Tags and permissions of the first start's default user (RabbitMQ's
    /// `default_user_tags.*` and `default_permissions.*`).
    pub default_user_tags: Vec<String>,
    pub default_permissions_configure: String,
    pub default_permissions_write: String,
    pub default_permissions_read: String,
    /// Log to standard output (RabbitMQ's `log.console`).
    pub log_console: bool,
    /// Also log to this file, appending, without colour (RabbitMQ's `log.file`); empty: no file.
    pub log_file: Option<PathBuf>,
    /// Levels of the console and the file; empty means `log_level`.
    pub log_console_level: String,
    pub log_file_level: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            amqp_listen: vec![
                "0.0.0.0:5672".parse().expect("literal"),
                "[::]:5672".parse().expect("literal"),
            ],
            data_dir: PathBuf::from("./warren-data"),
            log_level: "info".into(),
            default_user: "guest".into(),
            default_pass: "guest".into(),
            default_vhost: "/".into(),
            loopback_users: vec!["guest".into()],
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: 60,
            max_message_size: 134_217_728,
            handshake_timeout: 10_000,
            consumer_timeout: 1_800_000,
            manual_clock: false,
            product: "RabbitMQ".into(),
            product_version: "3.13.7".into(),
            cluster_name: "warren".into(),
            queue_ram_limit: 33_554_432,
            store_cache_size: 67_108_864,
            vm_memory_high_watermark: 0.4,
            vm_memory_high_watermark_absolute: 0,
            disk_free_limit: 50_000_000,
            disk_free_limit_relative: 0.0,
            connection_max: 0,
            vhost_max_connections: 0,
            vhost_max_queues: 0,
            consumer_max_per_channel: 0,
            amqps_listen: Vec::new(),
            management_listen: vec![
                "0.0.0.0:15672".parse().expect("literal"),
                "[::]:15672".parse().expect("literal"),
            ],
            prometheus_listen: vec![
                "0.0.0.0:15692".parse().expect("literal"),
                "[::]:15692".parse().expect("literal"),
            ],
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            tls_verify_peer: false,
            tls_fail_if_no_peer_cert: false,
            tls_versions: vec!["tlsv1.3".into(), "tlsv1.2".into()],
            tls_ciphers: Vec::new(),
            ssl_cert_login_from: "common_name".into(),
            load_definitions: None,
            node_name: String::new(),
            default_user_tags: vec!["administrator".into()],
            default_permissions_configure: ".*".into(),
            default_permissions_write: ".*".into(),
            default_permissions_read: ".*".into(),
            log_console: true,
            log_file: None,
            log_console_level: String::new(),
            log_file_level: String::new(),
        }
    }
}

/// Every key `set` understands, for `--help`-style listings and env scanning.
pub const KEYS: &[&str] = &[
    "amqp_listen",
    "data_dir",
    "log_level",
    "default_user",
    "default_pass",
    "default_vhost",
    "loopback_users",
    "channel_max",
    "frame_max",
    "heartbeat",
    "max_message_size",
    "handshake_timeout",
    "consumer_timeout",
    "manual_clock",
    "product",
    "product_version",
    "cluster_name",
    "load_definitions",
    "queue_ram_limit",
    "store_cache_size",
    "vm_memory_high_watermark",
    "vm_memory_high_watermark_absolute",
    "disk_free_limit",
    "disk_free_limit_relative",
    "connection_max",
    "vhost_max_connections",
    "vhost_max_queues",
    "consumer_max_per_channel",
    "amqps_listen",
    "management_listen",
    "prometheus_listen",
    "tls_cert",
    "tls_key",
    "tls_ca",
    "tls_verify_peer",
    "tls_fail_if_no_peer_cert",
    "tls_versions",
    "tls_ciphers",
    "ssl_cert_login_from",
    "node_name",
    "default_user_tags",
    "default_permissions_configure",
    "default_permissions_write",
    "default_permissions_read",
    "log_console",
    "log_file",
    "log_console_level",
    "log_file_level",
];

/// RabbitMQ's Docker image variables, honoured as aliases (Warren's own names win).
const RABBITMQ_ALIASES: &[(&str, &str)] = &[
    ("RABBITMQ_DEFAULT_USER", "default_user"),
    ("RABBITMQ_DEFAULT_PASS", "default_pass"),
    ("RABBITMQ_DEFAULT_VHOST", "default_vhost"),
];

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Config {
    /// Set one key from its textual form (lists are comma-separated).
    pub fn set(&mut self, key: &str, value: &str, source: &str) -> Result<(), ConfigError> {
        let bad = |why: String| ConfigError::BadValue {
            key: key.to_owned(),
            origin: source.to_owned(),
            why,
        };
        fn num<T: std::str::FromStr>(v: &str) -> Result<T, String>
        where
            T::Err: std::fmt::Display,
        {
            v.trim().parse::<T>().map_err(|e| format!("'{v}': {e}"))
        }
        let addrs = |value: &str| -> Result<Vec<SocketAddr>, ConfigError> {
            list(value)
                .iter()
                .map(|a| {
                    a.parse::<SocketAddr>()
                        .map_err(|e| bad(format!("'{a}': {e}")))
                })
                .collect()
        };
        let path = |value: &str| (!value.trim().is_empty()).then(|| PathBuf::from(value));
        let flag = |value: &str| match value.trim() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            other => Err(bad(format!("'{other}' is not true or false"))),
        };
        match key {
            "amqp_listen" => self.amqp_listen = addrs(value)?,
            "amqps_listen" => self.amqps_listen = addrs(value)?,
            "management_listen" => self.management_listen = addrs(value)?,
            "prometheus_listen" => self.prometheus_listen = addrs(value)?,
            "tls_cert" => self.tls_cert = path(value),
            "tls_key" => self.tls_key = path(value),
            "tls_ca" => self.tls_ca = path(value),
            "load_definitions" => self.load_definitions = path(value),
            "tls_verify_peer" => self.tls_verify_peer = flag(value)?,
            "tls_fail_if_no_peer_cert" => self.tls_fail_if_no_peer_cert = flag(value)?,
            "tls_versions" => {
                let versions: Vec<String> =
                    list(value).iter().map(|v| v.to_ascii_lowercase()).collect();
                if let Some(v) = versions
                    .iter()
                    .find(|v| !["tlsv1.2", "tlsv1.3"].contains(&v.as_str()))
                {
                    return Err(bad(format!(
                        "'{v}' is not supported: only tlsv1.2 and tlsv1.3 are"
                    )));
                }
                if versions.is_empty() {
                    return Err(bad("at least one of tlsv1.2, tlsv1.3".into()));
                }
                self.tls_versions = versions;
            }
            "tls_ciphers" => self.tls_ciphers = list(value),
            "ssl_cert_login_from" => {
                if !["common_name", "subject_alternative_name"].contains(&value) {
                    return Err(bad(format!(
                        "'{value}' is not common_name or subject_alternative_name"
                    )));
                }
                self.ssl_cert_login_from = value.to_owned();
            }
            "data_dir" => self.data_dir = PathBuf::from(value),
            "log_level" | "log_console_level" | "log_file_level" => {
                let v = value.to_ascii_lowercase();
                let empty_ok = key != "log_level" && v.is_empty();
                if !empty_ok
                    && !["off", "error", "warn", "info", "debug", "trace"].contains(&v.as_str())
                {
                    return Err(bad(format!(
                        "'{value}' is not one of off, error, warn, info, debug, trace"
                    )));
                }
                match key {
                    "log_level" => self.log_level = v,
                    "log_console_level" => self.log_console_level = v,
                    _ => self.log_file_level = v,
                }
            }
            "log_console" => self.log_console = flag(value)?,
            "log_file" => self.log_file = path(value),
            "node_name" => self.node_name = value.to_owned(),
            "default_user_tags" => self.default_user_tags = list(value),
            "default_permissions_configure" => {
                self.default_permissions_configure = value.to_owned()
            }
            "default_permissions_write" => self.default_permissions_write = value.to_owned(),
            "default_permissions_read" => self.default_permissions_read = value.to_owned(),
            "default_user" => self.default_user = value.to_owned(),
            "default_pass" => self.default_pass = value.to_owned(),
            "default_vhost" => self.default_vhost = value.to_owned(),
            "loopback_users" => self.loopback_users = list(value),
            "channel_max" => {
                let n: u16 = num(value).map_err(bad)?;
                if n == 0 {
                    return Err(bad("must be between 1 and 65535".into()));
                }
                self.channel_max = n;
            }
            "frame_max" => {
                let n: u32 = num(value).map_err(bad)?;
                if n < 4096 {
                    return Err(bad(format!("{n} is below the AMQP minimum of 4096")));
                }
                self.frame_max = n;
            }
            "heartbeat" => self.heartbeat = num(value).map_err(bad)?,
            "max_message_size" => {
                let n: u64 = num(value).map_err(bad)?;
                if n == 0 || n > 536_870_912 {
                    return Err(bad(format!(
                        "{n} is outside 1..=536870912 (512 MiB, RabbitMQ's ceiling)"
                    )));
                }
                self.max_message_size = n;
            }
            "handshake_timeout" => self.handshake_timeout = num(value).map_err(bad)?,
            "consumer_timeout" => self.consumer_timeout = num(value).map_err(bad)?,
            "manual_clock" => self.manual_clock = flag(value)?,
            "product" => self.product = value.to_owned(),
            "product_version" => self.product_version = value.to_owned(),
            "cluster_name" => self.cluster_name = value.to_owned(),
            "queue_ram_limit" => self.queue_ram_limit = num(value).map_err(bad)?,
            "store_cache_size" => {
                let n: u64 = num(value).map_err(bad)?;
                if n < 1_048_576 {
                    return Err(bad(format!("{n} is below 1 MiB")));
                }
                self.store_cache_size = n;
            }
            "vm_memory_high_watermark" => {
                let f: f64 = num(value).map_err(bad)?;
                if !(0.0..=1.0).contains(&f) || f == 0.0 {
                    return Err(bad(format!(
                        "{f} is not a fraction of total memory in (0, 1]"
                    )));
                }
                self.vm_memory_high_watermark = f;
            }
            "vm_memory_high_watermark_absolute" => {
                self.vm_memory_high_watermark_absolute = num(value).map_err(bad)?
            }
            "disk_free_limit" => self.disk_free_limit = num(value).map_err(bad)?,
            "disk_free_limit_relative" => {
                let f: f64 = num(value).map_err(bad)?;
                if !(0.0..=100.0).contains(&f) {
                    return Err(bad(format!(
                        "{f} is not a multiple of total RAM in [0, 100]"
                    )));
                }
                self.disk_free_limit_relative = f;
            }
            "connection_max" => self.connection_max = num(value).map_err(bad)?,
            "vhost_max_connections" => self.vhost_max_connections = num(value).map_err(bad)?,
            "vhost_max_queues" => self.vhost_max_queues = num(value).map_err(bad)?,
            "consumer_max_per_channel" => {
                self.consumer_max_per_channel = num(value).map_err(bad)?
            }
            _ => {
                return Err(ConfigError::UnknownKey {
                    key: key.to_owned(),
                    origin: source.to_owned(),
                })
            }
        }
        Ok(())
    }

    /// Apply a TOML document (flat table of keys).
    pub fn apply_toml(&mut self, text: &str, source: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::File {
                path: source.to_owned(),
                why: e.to_string(),
            })?;
        for (key, value) in table {
            let text = match &value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|v| match v {
                        toml::Value::String(s) => Ok(s.clone()),
                        other => Err(ConfigError::BadValue {
                            key: key.clone(),
                            origin: source.to_owned(),
                            why: format!("list items must be strings, got {other}"),
                        }),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .join(","),
                other => {
                    return Err(ConfigError::BadValue {
                        key: key.clone(),
                        origin: source.to_owned(),
                        why: format!("unsupported value {other}"),
                    })
                }
            };
            self.set(&key, &text, source)?;
        }
        Ok(())
    }

    /// Apply a config file: RabbitMQ's sysctl format when it ends in `.conf`, Warren's TOML
    /// otherwise. Returns warnings for RabbitMQ keys Warren does not act on.
    pub fn apply_file(&mut self, path: &Path) -> Result<Vec<String>, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        let source = path.display().to_string();
        if path.extension().is_some_and(|e| e == "conf") {
            rabbitmq_conf::apply_files(self, &[(source, text)])
        } else {
            self.apply_toml(&text, &source).map(|()| Vec::new())
        }
    }

    /// The node's name as the management API and metrics show it.
    pub fn node_name(&self) -> String {
        if self.node_name.is_empty() {
            format!("warren@{}", self.cluster_name)
        } else {
            self.node_name.clone()
        }
    }

    /// Apply every `WARREN_*` variable; an unknown one is an error like an unknown key.
    /// RabbitMQ's variables (`RABBITMQ_DEFAULT_USER`, `RABBITMQ_NODE_PORT`, ...) count too,
    /// below Warren's own names; the returned warnings name those Warren does not act on.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Vec<String>, ConfigError> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let warnings = rabbitmq_conf::apply_env(self, &vars)?;
        for (name, value) in &vars {
            if let Some((_, key)) = RABBITMQ_ALIASES.iter().find(|(n, _)| n == name) {
                self.set(key, value, &format!("environment variable {name}"))?;
            }
        }
        for (name, value) in vars {
            if let Some(key) = name.strip_prefix("WARREN_") {
                self.set(
                    &key.to_ascii_lowercase(),
                    &value,
                    &format!("environment variable {name}"),
                )?;
            }
        }
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env_then_flags_override_in_order() {
        let mut c = Config::default();
        c.apply_toml(
            "heartbeat = 30\nframe_max = 8192\namqp_listen = [\"127.0.0.1:1\"]",
            "t.toml",
        )
        .unwrap();
        assert_eq!((c.heartbeat, c.frame_max), (30, 8192));
        c.apply_env([("WARREN_HEARTBEAT".to_string(), "10".to_string())])
            .unwrap();
        assert_eq!(c.heartbeat, 10);
        c.set("heartbeat", "5", "flag").unwrap();
        assert_eq!(c.heartbeat, 5);
        assert_eq!(c.amqp_listen, vec!["127.0.0.1:1".parse().unwrap()]);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_themselves() {
        let mut c = Config::default();
        let e = c.apply_toml("hearbeat = 3", "t.toml").unwrap_err();
        assert!(e.to_string().contains("hearbeat"), "{e}");
        let e = c.apply_toml("frame_max = 100", "t.toml").unwrap_err();
        assert!(e.to_string().contains("frame_max"), "{e}");
        let e = c
            .apply_env([("WARREN_NOPE".to_string(), "1".to_string())])
            .unwrap_err();
        assert!(e.to_string().contains("WARREN_NOPE"), "{e}");
        assert!(c.set("amqp_listen", "nonsense", "flag").is_err());
    }

    #[test]
    fn rabbitmq_image_variables_set_the_first_user_below_warrens_own() {
        let mut c = Config::default();
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        c.apply_env(env(&[
            ("RABBITMQ_DEFAULT_USER", "shop"),
            ("RABBITMQ_DEFAULT_PASS", "s3cret"),
            ("RABBITMQ_DEFAULT_VHOST", "orders"),
            ("RABBITMQ_NODENAME", "rabbit@x"),
        ]))
        .unwrap();
        assert_eq!(
            (
                c.default_user.as_str(),
                c.default_pass.as_str(),
                c.default_vhost.as_str()
            ),
            ("shop", "s3cret", "orders")
        );
        c.apply_env(env(&[
            ("WARREN_DEFAULT_USER", "warren"),
            ("RABBITMQ_DEFAULT_USER", "rabbit"),
        ]))
        .unwrap();
        assert_eq!(c.default_user, "warren");
    }

    #[test]
    fn old_tls_versions_are_refused() {
        let mut c = Config::default();
        let e = c
            .set("tls_versions", "tlsv1.1,tlsv1.2", "flag")
            .unwrap_err();
        assert!(e.to_string().contains("tlsv1.1"), "{e}");
        c.set("tls_versions", "TLSv1.2", "flag").unwrap();
        assert_eq!(c.tls_versions, vec!["tlsv1.2"]);
    }

    #[test]
    fn the_example_config_file_is_the_default() {
        let mut c = Config::default();
        let text = include_str!("../../config/warren.toml");
        c.apply_toml(text, "config/warren.toml").unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn every_key_is_settable() {
        for key in KEYS {
            let mut c = Config::default();
            let value = match *key {
                "amqp_listen" => "127.0.0.1:5672",
                "log_level" | "log_console_level" | "log_file_level" => "debug",
                "log_console" => "false",
                "log_file" => "/tmp/warren.log",
                "node_name"
                | "default_user_tags"
                | "default_permissions_configure"
                | "default_permissions_write"
                | "default_permissions_read" => "x",
                "vm_memory_high_watermark" | "disk_free_limit_relative" => "0.5",
                "tls_cert" | "tls_key" | "tls_ca" | "load_definitions" => "/tmp/x.pem",
                "tls_verify_peer" | "tls_fail_if_no_peer_cert" | "manual_clock" => "true",
                "tls_versions" => "tlsv1.3",
                "ssl_cert_login_from" => "common_name",
                "amqps_listen" | "management_listen" | "prometheus_listen" => "127.0.0.1:1",
                "data_dir" | "default_user" | "default_pass" | "default_vhost"
                | "loopback_users" | "product" | "product_version" | "cluster_name" => "x",
                // fits every numeric key: u16 limits up to byte sizes with a 1 MiB floor
                "channel_max" | "heartbeat" => "8192",
                _ => "2097152",
            };
            c.set(key, value, "test").unwrap();
        }
    }
}
