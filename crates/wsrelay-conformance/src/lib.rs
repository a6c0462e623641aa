//! wsrelay's conformance suite, modelled on the Autobahn TestSuite.
//!
//! A raw-bytes driver sits on one side of the relay (or both): it can send any frame, valid or
//! not, split at any byte, at any pace, and records exactly what comes back — frames, close
//! codes, the TCP close and when. Two directions are covered:
//!
//! 1. driver as client → wsrelay → an echo upstream (wsrelay's own, or Python `websockets`);
//! 2. a real client (Python `websockets`, echoing) → wsrelay → driver as upstream.
//!
//! Every case has an id, a one-line description and the outcome RFC 6455 requires; a run
//! writes a Markdown and a JSON report and ends with `N passed, N failed`.
#![deny(missing_docs)]

pub mod case;
pub mod cases;
pub mod harness;
pub mod peer;
pub mod report;
pub mod wire;

use case::{Case, CaseResult, Group, Script};
use harness::{Echo, Env};

/// Which cases to run: everything when both lists are empty.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Group numbers.
    pub groups: Vec<u8>,
    /// Case ids or id prefixes (`5` or `6.3` or `6.3.12`).
    pub cases: Vec<String>,
}

impl Selection {
    /// Whether `case` is selected.
    pub fn matches(&self, case: &Case) -> bool {
        if self.groups.is_empty() && self.cases.is_empty() {
            return true;
        }
        self.groups.contains(&case.group.number())
            || self
                .cases
                .iter()
                .any(|id| case.id == *id || case.id.starts_with(&format!("{id}.")))
    }
}

/// Runs the selected direction-1 and hand-driven cases (groups 1–11) against `echo`, printing
/// each failure as it happens.
pub async fn run_client_side(
    echo: &Echo,
    selection: &Selection,
) -> Result<Vec<CaseResult>, String> {
    let cases: Vec<Case> = cases::all()
        .into_iter()
        .filter(|c| c.group != Group::FromUpstream && selection.matches(c))
        .collect();
    if cases.is_empty() {
        return Ok(Vec::new());
    }
    let upstream = harness::start_echo(echo).await?;
    let relay = harness::start_relay(upstream.addr, case::Profile::Default)
        .await
        .map_err(|e| e.to_string())?;
    let limited = harness::start_relay(upstream.addr, case::Profile::Limited)
        .await
        .map_err(|e| e.to_string())?;
    let env = Env {
        relay: relay.addr,
        limited: limited.addr,
        echo: upstream.addr,
    };
    let mut results = Vec::with_capacity(cases.len());
    for case in &cases {
        if let (Echo::Python(_), Some(why)) = (echo, case.python_echo_differs) {
            results.push(CaseResult {
                id: case.id.clone(),
                group: case.group,
                description: case.description.clone(),
                expected: case.expected_text(),
                observed: "not run".into(),
                verdict: case::Verdict::Skipped,
                note: why.into(),
                duration: std::time::Duration::ZERO,
            });
            continue;
        }
        let relaxed;
        let case = match (echo, case.python_echo_non_strict) {
            (Echo::Python(_), Some(why)) => {
                relaxed = Case {
                    non_strict: Some(why),
                    ..case.clone()
                };
                &relaxed
            }
            _ => case,
        };
        let result = harness::run_client_case(case, &env).await;
        print_failure(&result);
        results.push(result);
    }
    Ok(results)
}

/// Runs the selected group-12 cases with the Python client at `python`.
pub async fn run_upstream_side(
    python: &std::path::Path,
    selection: &Selection,
) -> Result<Vec<CaseResult>, String> {
    let cases: Vec<Case> = cases::all()
        .into_iter()
        .filter(|c| matches!(c.script, Script::Upstream { .. }) && selection.matches(c))
        .collect();
    if cases.is_empty() {
        return Ok(Vec::new());
    }
    let refs: Vec<&Case> = cases.iter().collect();
    let results = harness::run_upstream_cases(&refs, python).await?;
    results.iter().for_each(print_failure);
    Ok(results)
}

fn print_failure(r: &CaseResult) {
    if r.verdict == case::Verdict::Fail {
        eprintln!(
            "FAILED {} {}\n  expected: {}\n  observed: {}\n  why: {}",
            r.id, r.description, r.expected, r.observed, r.note
        );
    }
}
