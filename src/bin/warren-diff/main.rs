//! `warren-diff`: differential testing of AMQP 0-9-1 brokers. It plays the same scenario
//! (a sequence of AMQP operations from one or more connections, as raw frames) against
//! brokers and compares everything they send back.
//!
//! ```text
//! warren-diff record  --broker 127.0.0.1:5792 tests/differential/cases    # from RabbitMQ
//! warren-diff replay  --broker 127.0.0.1:5672 tests/differential/cases    # Warren vs recorded
//! warren-diff compare --a 127.0.0.1:5672 --b 127.0.0.1:5792 CASES          # two live brokers
//! warren-diff generate --a WARREN --b RABBITMQ --seconds 120 --save DIR   # random sequences
//! ```
//! Deliberate differences are listed, each with its reason, in the `--known` file
//! (tests/differential/known-differences.json): a scenario that reaches one is compared up
//! to that step only.

mod generate;
mod methods;
mod runner;
mod scenario;
mod wire;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::{Parser, Subcommand};
use regex::Regex;
use serde::Deserialize;

use scenario::Scenario;

#[derive(Parser)]
#[command(
    name = "warren-diff",
    about = "Differential testing of AMQP 0-9-1 brokers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Play scenarios against a reference broker and write its answers into the files.
    Record {
        #[arg(long)]
        broker: SocketAddr,
        /// What to call the reference in the files (e.g. "RabbitMQ 3.10.8").
        #[arg(long, default_value = "RabbitMQ")]
        name: String,
        paths: Vec<PathBuf>,
    },
    /// Play recorded scenarios against a broker and compare with the recorded answers.
    Replay {
        #[arg(long)]
        broker: SocketAddr,
        #[arg(long, default_value = "tests/differential/known-differences.json")]
        known: PathBuf,
        paths: Vec<PathBuf>,
    },
    /// Play scenarios against two live brokers and compare them.
    Compare {
        #[arg(long)]
        a: SocketAddr,
        #[arg(long)]
        b: SocketAddr,
        #[arg(long, default_value = "tests/differential/known-differences.json")]
        known: PathBuf,
        paths: Vec<PathBuf>,
    },
    /// Random valid sequences against two live brokers (a: the one under test, b: the
    /// reference) for a bounded time; each difference is shrunk to a minimal sequence and
    /// saved, with b's answers, as a regression case.
    Generate {
        #[arg(long)]
        a: SocketAddr,
        #[arg(long)]
        b: SocketAddr,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long, default_value_t = 24)]
        steps: usize,
        #[arg(long, default_value = "tests/differential/known-differences.json")]
        known: PathBuf,
        #[arg(long, default_value = "tests/differential/cases")]
        save: PathBuf,
    },
}

/// One deliberate difference: at a step where the reference sent lines matching `expected`
/// and the broker under test sent lines matching `actual` instead (either may be absent:
/// a line only one side sends), the runs are taken to agree, and the steps after it are not
/// compared, since the two brokers are knowingly in different states from there.
#[derive(Deserialize)]
struct KnownDifference {
    expected: Option<String>,
    actual: Option<String>,
    reason: String,
}

struct KnownEntry {
    expected: Option<Regex>,
    actual: Option<Regex>,
    reason: String,
}

pub struct Known(Vec<KnownEntry>);

impl Known {
    fn load(path: &Path) -> Result<Known, String> {
        if !path.exists() {
            return Ok(Known(Vec::new()));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let list: Vec<KnownDifference> =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let compile = |p: Option<String>| {
            p.map(|p| Regex::new(&p).map_err(|e| format!("{p}: {e}")))
                .transpose()
        };
        list.into_iter()
            .map(|k| {
                Ok(KnownEntry {
                    expected: compile(k.expected)?,
                    actual: compile(k.actual)?,
                    reason: k.reason,
                })
            })
            .collect::<Result<_, String>>()
            .map(Known)
    }

    /// The listed difference that explains exactly these missing and extra lines.
    fn explains(&self, missing: &[&String], extra: &[&String]) -> Option<&str> {
        let covers = |re: &Option<Regex>, lines: &[&String]| match re {
            None => lines.is_empty(),
            Some(re) => !lines.is_empty() && lines.iter().all(|l| re.is_match(l)),
        };
        self.0
            .iter()
            .find(|k| covers(&k.expected, missing) && covers(&k.actual, extra))
            .map(|k| k.reason.as_str())
    }
}

static RUNS: AtomicU64 = AtomicU64::new(0);

/// Play one scenario on one broker; every run gets its own name prefix.
pub async fn play(addr: SocketAddr, scenario: &Scenario) -> Vec<Vec<String>> {
    let id = format!(
        "{}x{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    );
    runner::Runner::new(addr, &id).run(scenario).await
}

/// The first step where the two differ, as text for a person; None when they agree.
pub fn difference(
    scenario: &Scenario,
    expected: &[Vec<String>],
    actual: &[Vec<String>],
    known: &Known,
) -> Option<String> {
    let n = expected.len().max(actual.len());
    let empty = Vec::new();
    let mut out = String::new();
    let mut shown = 0;
    for i in 0..n {
        let (e, a) = (
            expected.get(i).unwrap_or(&empty),
            actual.get(i).unwrap_or(&empty),
        );
        if e != a {
            let missing: Vec<&String> = e.iter().filter(|l| !a.contains(l)).collect();
            let extra: Vec<&String> = a.iter().filter(|l| !e.contains(l)).collect();
            if out.is_empty() {
                if let Some(reason) = known.explains(&missing, &extra) {
                    eprintln!("{}: step {i} differs as known: {reason}", scenario.name);
                    return None;
                }
            }
            let step = scenario
                .steps
                .get(i)
                .and_then(|s| serde_json::to_string(s).ok())
                .unwrap_or_default();
            out.push_str(&format!("step {i}: {step}\n"));
            for l in &missing {
                out.push_str(&format!("  - {l}\n"));
            }
            for l in &extra {
                out.push_str(&format!("  + {l}\n"));
            }
            if missing.is_empty() && extra.is_empty() {
                out.push_str(&format!(
                    "  order: expected {e:?}\n          actual   {a:?}\n"
                ));
            }
            shown += 1;
            // later steps often differ only because of the first difference
            if shown == 3 {
                break;
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

fn paths_or_default(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    if paths.is_empty() {
        vec![PathBuf::from("tests/differential/cases")]
    } else {
        paths
    }
}

fn load(paths: Vec<PathBuf>) -> Result<Vec<(PathBuf, Scenario)>, String> {
    let mut all = Vec::new();
    for p in paths_or_default(paths) {
        all.extend(scenario::load_all(&p)?);
    }
    Ok(all)
}

async fn main_result(cli: Cli) -> Result<bool, String> {
    match cli.command {
        Command::Record {
            broker,
            name,
            paths,
        } => {
            for (path, mut s) in load(paths)? {
                s.expected = play(broker, &s).await;
                s.recorded_from = name.clone();
                s.save(&path)?;
                println!("recorded {}", s.name);
            }
            Ok(true)
        }
        Command::Replay {
            broker,
            known,
            paths,
        } => {
            let known = Known::load(&known)?;
            let (mut passed, mut failed) = (0, 0);
            for (path, s) in load(paths)? {
                if s.expected.is_empty() {
                    return Err(format!("{}: nothing recorded yet", path.display()));
                }
                let actual = play(broker, &s).await;
                match difference(&s, &s.expected, &actual, &known) {
                    None => passed += 1,
                    Some(d) => {
                        failed += 1;
                        println!("DIFFERENT {} ({})\n{d}", s.name, path.display());
                    }
                }
            }
            println!("{passed} scenarios as recorded, {failed} different");
            Ok(failed == 0)
        }
        Command::Compare { a, b, known, paths } => {
            let known = Known::load(&known)?;
            let mut same = true;
            for (_, s) in load(paths)? {
                let (ra, rb) = (play(a, &s).await, play(b, &s).await);
                if let Some(d) = difference(&s, &rb, &ra, &known) {
                    same = false;
                    println!("DIFFERENT {}\n{d}", s.name);
                } else {
                    println!("same {}", s.name);
                }
            }
            Ok(same)
        }
        Command::Generate {
            a,
            b,
            seconds,
            seed,
            steps,
            known,
            save,
        } => {
            let known = Known::load(&known)?;
            let seed = seed.unwrap_or_else(rand::random);
            generate::run(generate::Settings {
                a,
                b,
                seconds,
                seed,
                steps,
                known: &known,
                save: &save,
            })
            .await
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match main_result(Cli::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("warren-diff: {e}");
            ExitCode::from(2)
        }
    }
}
