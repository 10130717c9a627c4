//! The scenario file format: a list of AMQP steps, each on a connection (`c`) and channel
//! (`ch`), and the observations a reference broker (RabbitMQ) gave for each step.
//! One flat step type keeps the JSON short and readable; `op` names the AMQP method in
//! RabbitMQ's spelling and only the fields that method uses are written.

use std::path::Path;

use serde::{Deserialize, Serialize};

fn is_zero_usize(v: &usize) -> bool {
    *v == 0
}
fn is_zero_u16(v: &u16) -> bool {
    *v == 0
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Step {
    #[serde(skip_serializing_if = "is_zero_usize")]
    pub c: usize,
    #[serde(skip_serializing_if = "is_zero_u16")]
    pub ch: u16,
    /// `connection.open`, `queue.declare`, `basic.publish`, ..., or `raw` (bytes as hex).
    pub op: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange: Option<String>,
    /// The destination of exchange.bind / unbind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<String>,
    /// Exchange type.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Consumer tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_tag: Option<u64>,
    /// Boolean method fields that are set: durable, exclusive, no_ack, mandatory, ...
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Body length in bytes when `body` is absent (filled with 'x').
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_size: Option<usize>,
    /// Payload bytes per body frame (default: the negotiated frame_max less 8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_payload: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub props: Option<serde_json::Map<String, serde_json::Value>>,
    /// basic.qos prefetch_count
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefetch: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_max: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_max: Option<u32>,
    /// Client capabilities advertised in start-ok (default: what pika and the Java client send).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    /// reply code / text of a client-initiated close
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// raw bytes to write, hex
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
}

impl Step {
    pub fn new(c: usize, ch: u16, op: &str) -> Step {
        Step {
            c,
            ch,
            op: op.to_owned(),
            ..Step::default()
        }
    }
    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Scenario {
    pub name: String,
    /// What the scenario is about, in a RabbitMQ user's words.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub about: String,
    pub steps: Vec<Step>,
    /// What the reference broker answered, per step (same length as `steps`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected: Vec<Vec<String>>,
    /// The reference broker the observations were recorded from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub recorded_from: String,
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Every `*.json` scenario under `path` (or `path` itself when it is a file), by name.
pub fn load_all(path: &Path) -> Result<Vec<(std::path::PathBuf, Scenario)>, String> {
    let mut files = Vec::new();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))? {
            let p = entry.map_err(|e| e.to_string())?.path();
            if p.extension().is_some_and(|e| e == "json") {
                files.push(p);
            }
        }
        files.sort();
    } else {
        files.push(path.to_path_buf());
    }
    files
        .into_iter()
        .map(|p| Scenario::load(&p).map(|s| (p, s)))
        .collect()
}
