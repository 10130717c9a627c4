//! `warrenctl`: rabbitmqctl's and rabbitmq-diagnostics' commands, with their names,
//! arguments and output shape, run against a Warren's management API (HTTP). Installed (or
//! linked) under the name `rabbitmqctl` or `rabbitmq-diagnostics` it answers to that name,
//! so scripts and container healthchecks run unchanged. It holds no state and never opens
//! the data directory: the running broker does the work and stores it.

mod http;
mod ops;
mod policies;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use http::{Api, ApiFailure};
use warren::management::GRANT_CREATOR_HEADER;

#[derive(Parser, Debug)]
#[command(
    name = "warrenctl",
    version,
    about = "Manage and check a running Warren with rabbitmqctl's and rabbitmq-diagnostics' commands"
)]
struct Cli {
    /// The management API, e.g. http://127.0.0.1:15672
    #[arg(
        long,
        env = "WARRENCTL_URL",
        default_value = "http://127.0.0.1:15672",
        global = true
    )]
    url: String,
    /// A user with the administrator tag (default: WARRENCTL_USERNAME, else the container's
    /// RABBITMQ_DEFAULT_USER, else guest).
    #[arg(long = "username", id = "api_username", global = true)]
    api_username: Option<String>,
    /// Its password (default: WARRENCTL_PASSWORD, else RABBITMQ_DEFAULT_PASS, else guest).
    #[arg(long = "password", id = "api_password", global = true)]
    api_password: Option<String>,
    /// Suppress informational messages ("Listing users ...").
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Suppress informational messages and table headers.
    #[arg(short, long, global = true)]
    silent: bool,
    /// Output format for list commands: table or json.
    #[arg(long, default_value = "table", global = true)]
    formatter: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
#[command(rename_all = "snake_case")]
enum Command {
    /// Create a user.
    AddUser {
        username: String,
        password: String,
    },
    /// Delete a user and its permissions.
    DeleteUser {
        username: String,
    },
    ChangePassword {
        username: String,
        new_password: String,
    },
    /// Replace a user's tags (none clears them).
    SetUserTags {
        username: String,
        tags: Vec<String>,
    },
    ListUsers,
    AddVhost {
        vhost: String,
        #[arg(long)]
        description: Option<String>,
        /// Comma-separated.
        #[arg(long)]
        tags: Option<String>,
    },
    /// Delete a vhost with everything in it; its connections are closed.
    DeleteVhost {
        vhost: String,
    },
    ListVhosts,
    SetPermissions {
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        username: String,
        conf: String,
        write: String,
        read: String,
    },
    ClearPermissions {
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        username: String,
    },
    ListPermissions {
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
    },
    ListUserPermissions {
        username: String,
    },
    SetTopicPermissions {
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        username: String,
        exchange: String,
        write: String,
        read: String,
    },
    ClearTopicPermissions {
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        username: String,
    },
    ListTopicPermissions {
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
    },
    /// e.g. set_vhost_limits -p shop '{"max-connections": 100, "max-queues": 500}'
    SetVhostLimits {
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        definition: String,
    },
    ClearVhostLimits {
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
    },
    ListVhostLimits {
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
    },
    #[command(flatten)]
    Ops(ops::OpsCommand),
    #[command(flatten)]
    Policies(policies::PolicyCommand),
}

pub(crate) struct Out {
    quiet: bool,
    silent: bool,
    json: bool,
}

impl Out {
    fn info(&self, text: String) {
        if !(self.quiet || self.silent || self.json) {
            println!("{text}");
        }
    }

    /// rabbitmqctl's table: a tab-separated header, then one row per item.
    fn table(&self, header: &[&str], rows: &[Value], cell: impl Fn(&Value, &str) -> String) {
        if self.json {
            println!("{}", Value::Array(rows.to_vec()));
            return;
        }
        if !self.silent {
            println!("{}", header.join("\t"));
        }
        for r in rows {
            let cells: Vec<String> = header.iter().map(|h| cell(r, h)).collect();
            println!("{}", cells.join("\t"));
        }
    }
}

fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn tag_list(v: &Value) -> String {
    let tags: Vec<String> = v["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    format!("[{}]", tags.join(", "))
}

fn run(cli: Cli) -> Result<(), ApiFailure> {
    // Inside a container made from RabbitMQ's image settings, healthchecks run as the
    // container's default user, as rabbitmq-diagnostics needs no credentials there.
    let from_env = |names: [&str; 2]| {
        names
            .iter()
            .find_map(|n| std::env::var(n).ok())
            .unwrap_or_else(|| "guest".into())
    };
    let username = cli
        .api_username
        .clone()
        .unwrap_or_else(|| from_env(["WARRENCTL_USERNAME", "RABBITMQ_DEFAULT_USER"]));
    let password = cli
        .api_password
        .clone()
        .unwrap_or_else(|| from_env(["WARRENCTL_PASSWORD", "RABBITMQ_DEFAULT_PASS"]));
    let api = Api::new(&cli.url, &username, &password);
    let out = Out {
        quiet: cli.quiet,
        silent: cli.silent,
        json: cli.formatter == "json",
    };
    match cli.command {
        Command::Ops(command) => return ops::run(&api, &out, command),
        Command::Policies(command) => return policies::run(&api, &out, command),
        Command::AddUser { username, password } => {
            out.info(format!("Adding user \"{username}\" ..."));
            if api.get(&["users", &username])?.is_some() {
                return Err(ApiFailure::Data(format!("user_already_exists: {username}")));
            }
            api.put(
                &["users", &username],
                json!({"password": password, "tags": ""}),
            )?;
        }
        Command::DeleteUser { username } => {
            out.info(format!("Deleting user \"{username}\" ..."));
            api.delete(&["users", &username])?
                .ok_or_else(|| ApiFailure::Data(format!("User \"{username}\" does not exist")))?;
        }
        Command::ChangePassword {
            username,
            new_password,
        } => {
            out.info(format!("Changing password for user \"{username}\" ..."));
            api.get(&["users", &username])?
                .ok_or_else(|| ApiFailure::Data(format!("User \"{username}\" does not exist")))?;
            api.put(&["users", &username], json!({"password": new_password}))?;
        }
        Command::SetUserTags { username, tags } => {
            out.info(format!(
                "Setting tags for user \"{username}\" to [{}] ...",
                tags.join(", ")
            ));
            api.get(&["users", &username])?
                .ok_or_else(|| ApiFailure::Data(format!("User \"{username}\" does not exist")))?;
            api.put(&["users", &username], json!({"tags": tags}))?;
        }
        Command::ListUsers => {
            out.info("Listing users ...".into());
            let users = api.list(&["users"])?;
            out.table(&["user", "tags"], &users, |u, h| match h {
                "user" => text(u, "name"),
                _ => tag_list(u),
            });
        }
        Command::AddVhost {
            vhost,
            description,
            tags,
        } => {
            out.info(format!("Adding vhost \"{vhost}\" ..."));
            let mut body = json!({});
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            if let Some(t) = tags {
                body["tags"] = json!(t);
            }
            // rabbitmqctl add_vhost grants nobody anything, unlike a PUT from the HTTP API
            api.request(
                "PUT",
                &["vhosts", &vhost],
                "",
                Some((GRANT_CREATOR_HEADER, "false")),
                Some(body),
            )?;
        }
        Command::DeleteVhost { vhost } => {
            out.info(format!("Deleting vhost \"{vhost}\" ..."));
            api.delete(&["vhosts", &vhost])?.ok_or_else(|| {
                ApiFailure::Data(format!("Virtual host '{vhost}' does not exist"))
            })?;
        }
        Command::ListVhosts => {
            out.info("Listing vhosts ...".into());
            let vhosts = api.list(&["vhosts"])?;
            out.table(&["name"], &vhosts, text);
        }
        Command::SetPermissions {
            vhost,
            username,
            conf,
            write,
            read,
        } => {
            out.info(format!(
                "Setting permissions for user \"{username}\" in vhost \"{vhost}\" ..."
            ));
            api.put(
                &["permissions", &vhost, &username],
                json!({"configure": conf, "write": write, "read": read}),
            )?;
        }
        Command::ClearPermissions { vhost, username } => {
            out.info(format!(
                "Clearing permissions for user \"{username}\" in vhost \"{vhost}\" ..."
            ));
            // as rabbitmqctl: clearing what is not set is not an error
            api.delete(&["permissions", &vhost, &username])?;
        }
        Command::ListPermissions { vhost } => {
            out.info(format!("Listing permissions for vhost \"{vhost}\" ..."));
            let list = api.list(&["vhosts", &vhost, "permissions"])?;
            out.table(&["user", "configure", "write", "read"], &list, text);
        }
        Command::ListUserPermissions { username } => {
            out.info(format!("Listing permissions for user \"{username}\" ..."));
            let list = api.list(&["users", &username, "permissions"])?;
            out.table(&["vhost", "configure", "write", "read"], &list, text);
        }
        Command::SetTopicPermissions {
            vhost,
            username,
            exchange,
            write,
            read,
        } => {
            out.info(format!(
                "Setting topic permissions on \"{exchange}\" for user \"{username}\" in vhost \"{vhost}\" ..."
            ));
            api.put(
                &["topic-permissions", &vhost, &username],
                json!({"exchange": exchange, "write": write, "read": read}),
            )?;
        }
        Command::ClearTopicPermissions { vhost, username } => {
            out.info(format!(
                "Clearing topic permissions for user \"{username}\" in vhost \"{vhost}\" ..."
            ));
            api.delete(&["topic-permissions", &vhost, &username])?;
        }
        Command::ListTopicPermissions { vhost } => {
            out.info(format!(
                "Listing topic permissions for vhost \"{vhost}\" ..."
            ));
            let list: Vec<Value> = api
                .list(&["topic-permissions"])?
                .into_iter()
                .filter(|t| t["vhost"] == json!(vhost))
                .collect();
            out.table(&["user", "exchange", "write", "read"], &list, text);
        }
        Command::SetVhostLimits { vhost, definition } => {
            out.info(format!(
                "Applying limits for vhost \"{vhost}\": {definition} ..."
            ));
            let limits: serde_json::Map<String, Value> = serde_json::from_str(&definition)
                .map_err(|e| ApiFailure::Data(format!("limits must be a JSON object: {e}")))?;
            for (name, value) in limits {
                api.put(&["vhost-limits", &vhost, &name], json!({ "value": value }))?;
            }
        }
        Command::ClearVhostLimits { vhost } => {
            out.info(format!("Clearing vhost \"{vhost}\" limits ..."));
            for name in ["max-connections", "max-queues"] {
                api.delete(&["vhost-limits", &vhost, name])?;
            }
        }
        Command::ListVhostLimits { vhost } => {
            out.info(format!("Listing limits for vhost \"{vhost}\" ..."));
            let list = api.list(&["vhost-limits", &vhost])?;
            let value = list
                .first()
                .map(|l| l["value"].clone())
                .unwrap_or(json!({}));
            println!("{value}");
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    // the name it was called by (rabbitmqctl, rabbitmq-diagnostics) shows in usage texts
    let called = std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "warrenctl".into());
    // clap keeps the name for the process' life
    let called: &'static str = Box::leak(called.into_boxed_str());
    let cli = match <Cli as clap::CommandFactory>::command()
        .name(called)
        .try_get_matches()
        .and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error:\n{e}");
            ExitCode::from(e.exit_code())
        }
    }
}
