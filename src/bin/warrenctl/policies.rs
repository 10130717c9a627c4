//! rabbitmqctl's policy commands: `set_policy`, `clear_policy`, `list_policies` and their
//! operator-policy twins, with rabbitmqctl's arguments, messages and columns. The broker
//! checks the policy; a refusal is printed with RabbitMQ's reason.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::http::{Api, ApiFailure};
use crate::Out;

/// What set_policy and set_operator_policy take, as rabbitmqctl.
#[derive(Args, Debug)]
pub struct PolicySpec {
    #[arg(short = 'p', long = "vhost", default_value = "/")]
    vhost: String,
    #[arg(long, default_value = "0")]
    priority: String,
    /// queues, exchanges or all
    #[arg(long = "apply-to", default_value = "all")]
    apply_to: String,
    name: String,
    pattern: String,
    definition: String,
}

#[derive(Subcommand, Debug)]
#[command(rename_all = "snake_case")]
pub enum PolicyCommand {
    /// e.g. set_policy --apply-to queues order-cap '^orders\.' '{"max-length": 1000}'
    SetPolicy(PolicySpec),
    ClearPolicy {
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        name: String,
    },
    ListPolicies {
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
    },
    /// An operator policy caps what policies and arguments may set.
    SetOperatorPolicy(PolicySpec),
    ClearOperatorPolicy {
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        name: String,
    },
    ListOperatorPolicies {
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
    },
}

const COLUMNS: &[&str] = &[
    "vhost",
    "name",
    "pattern",
    "apply-to",
    "definition",
    "priority",
];

/// The API escapes `<` and `>` in a policy's refusal for browsers; a terminal wants them.
fn unescape(reason: String) -> String {
    reason
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn set(api: &Api, path: &str, p: &PolicySpec) -> Result<(), ApiFailure> {
    let definition: Value = serde_json::from_str(&p.definition)
        .map_err(|e| ApiFailure::Refused(format!("JSON decoding error. Reason: {e}")))?;
    let priority: Value = serde_json::from_str(&p.priority)
        .ok()
        .filter(Value::is_number)
        .ok_or_else(|| {
            ApiFailure::Usage(format!(
                "Invalid options for this command:\n--priority : {}",
                p.priority
            ))
        })?;
    let body = json!({"pattern": p.pattern, "definition": definition, "priority": priority, "apply-to": p.apply_to});
    api.put(&[path, &p.vhost, &p.name], body)
        .map_err(|e| match e {
            ApiFailure::Data(reason) => ApiFailure::Refused(unescape(reason)),
            other => other,
        })
}

fn list(api: &Api, out: &Out, path: &str, vhost: &str) -> Result<(), ApiFailure> {
    let rows = api.list(&[path, vhost])?;
    out.table(COLUMNS, &rows, |p, c| match &p[c] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    Ok(())
}

pub fn run(api: &Api, out: &Out, command: PolicyCommand) -> Result<(), ApiFailure> {
    match command {
        PolicyCommand::SetPolicy(p) => {
            out.info(format!(
                "Setting policy \"{}\" for pattern \"{}\" to \"{}\" with priority \"{}\" for vhost \"{}\" ...",
                p.name, p.pattern, p.definition, p.priority, p.vhost
            ));
            set(api, "policies", &p)?;
        }
        PolicyCommand::SetOperatorPolicy(p) => {
            out.info(format!(
                "Setting operator policy override \"{}\" for pattern \"{}\" to \"{}\" with priority \"{}\" for vhost \"{}\" ...",
                p.name, p.pattern, p.definition, p.priority, p.vhost
            ));
            set(api, "operator-policies", &p)?;
        }
        PolicyCommand::ClearPolicy { vhost, name } => {
            out.info(format!(
                "Clearing policy \"{name}\" on vhost \"{vhost}\" ..."
            ));
            api.delete(&["policies", &vhost, &name])?
                .ok_or_else(|| ApiFailure::Refused("Parameter does not exist".into()))?;
        }
        PolicyCommand::ClearOperatorPolicy { vhost, name } => {
            out.info(format!(
                "Clearing operator policy \"{name}\" on vhost \"{vhost}\" ..."
            ));
            api.delete(&["operator-policies", &vhost, &name])?
                .ok_or_else(|| ApiFailure::Refused("Parameter does not exist".into()))?;
        }
        PolicyCommand::ListPolicies { vhost } => {
            out.info(format!("Listing policies for vhost \"{vhost}\" ..."));
            list(api, out, "policies", &vhost)?;
        }
        PolicyCommand::ListOperatorPolicies { vhost } => {
            out.info(format!(
                "Listing operator policy overrides for vhost \"{vhost}\" ..."
            ));
            list(api, out, "operator-policies", &vhost)?;
        }
    }
    Ok(())
}
