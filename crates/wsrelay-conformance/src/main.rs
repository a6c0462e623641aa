//! `wsrelay-conformance`: runs the suite (or one group or case) and writes the report.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use wsrelay_conformance::harness::{self, Echo};
use wsrelay_conformance::report::{self, Summary};
use wsrelay_conformance::Selection;

/// Which echo upstream sits behind the relay in direction 1.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum EchoKind {
    /// wsrelay's built-in echo.
    Ours,
    /// An echo that checks nothing, so only the relay can refuse bad frames.
    Blind,
    /// Python `websockets` (installed by scripts/python-env.sh).
    Python,
}

/// Runs wsrelay's conformance suite: raw-bytes peers around the relay, Autobahn-style groups.
#[derive(Debug, Parser)]
struct Args {
    /// Run only these groups (repeatable), e.g. `--group 5`.
    #[arg(long = "group")]
    groups: Vec<u8>,
    /// Run only these cases or id prefixes (repeatable), e.g. `--case 6.3` or `--case 6.3.12`.
    #[arg(long = "case")]
    cases: Vec<String>,
    /// The echo upstream for groups 1–11.
    #[arg(long, value_enum, default_value = "ours")]
    echo: EchoKind,
    /// Skip group 12 (it needs Python).
    #[arg(long)]
    no_upstream_side: bool,
    /// Where report.md and report.json go.
    #[arg(long, default_value = "target/conformance/cli")]
    out: PathBuf,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    let selection = Selection {
        groups: args.groups,
        cases: args.cases,
    };
    let python = match (args.echo, args.no_upstream_side) {
        (EchoKind::Ours | EchoKind::Blind, true) => None,
        _ => match harness::python() {
            Ok(p) => Some(p),
            Err(why) => {
                eprintln!("SKIPPED everything that needs Python: {why}");
                None
            }
        },
    };
    let echo = match (args.echo, &python) {
        (EchoKind::Ours, _) => Some(Echo::Ours),
        (EchoKind::Blind, _) => Some(Echo::Blind),
        (EchoKind::Python, Some(p)) => Some(Echo::Python(p.clone())),
        (EchoKind::Python, None) => None,
    };
    let mut results = Vec::new();
    if let Some(echo) = echo {
        match wsrelay_conformance::run_client_side(&echo, &selection).await {
            Ok(r) => results.extend(r),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if let (Some(python), false) = (&python, args.no_upstream_side) {
        match wsrelay_conformance::run_upstream_side(python, &selection).await {
            Ok(r) => results.extend(r),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let title = format!("wsrelay conformance ({:?} echo)", args.echo);
    if let Err(e) = report::write(&args.out, &title, &results) {
        eprintln!("error: writing the report: {e}");
        return ExitCode::from(2);
    }
    let summary = Summary::of(&results);
    println!("report: {}", args.out.join("report.md").display());
    println!("{}", summary.line());
    if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
