//! Runs the whole conformance suite on every `cargo test`: groups 1–11 against wsrelay's echo,
//! a blind echo that checks nothing, and Python `websockets`, and group 12 with a real Python client. Reports go to
//! `target/conformance/<run>/report.{md,json}`.

use std::collections::HashSet;
use std::path::PathBuf;

use wsrelay_conformance::case::Group;
use wsrelay_conformance::harness::{self, Echo};
use wsrelay_conformance::report::{self, Summary};
use wsrelay_conformance::{cases, Selection};

fn report_dir(run: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/conformance")
        .join(run)
}

#[test]
fn cases_are_many_unique_and_described() {
    let all = cases::all();
    assert!(all.len() >= 250, "only {} cases", all.len());
    let mut ids = HashSet::new();
    for case in &all {
        assert!(ids.insert(case.id.clone()), "duplicate id {}", case.id);
        assert!(
            case.id.starts_with(&format!("{}.", case.group.number())),
            "{} is filed under group {}",
            case.id,
            case.group.number()
        );
        assert!(!case.description.is_empty() && !case.expected_text().is_empty());
    }
    for group in Group::ALL {
        assert!(
            all.iter().filter(|c| c.group == group).count() >= 5,
            "group {group:?} is thin"
        );
    }
}

#[test]
fn selection_picks_groups_and_id_prefixes() {
    let all = cases::all();
    let pick = |s: Selection| {
        all.iter()
            .filter(|c| s.matches(c))
            .map(|c| c.id.clone())
            .collect::<Vec<_>>()
    };
    let group5 = pick(Selection {
        groups: vec![5],
        cases: vec![],
    });
    assert!(group5.iter().all(|id| id.starts_with("5.")) && group5.len() > 20);
    assert_eq!(
        pick(Selection {
            groups: vec![],
            cases: vec!["6.3.12".into()]
        }),
        vec!["6.3.12"]
    );
    let prefix = pick(Selection {
        groups: vec![],
        cases: vec!["1.1".into()],
    });
    assert!(
        prefix.iter().all(|id| id.starts_with("1.1.")) && prefix.len() == 10,
        "{prefix:?}"
    );
}

/// One run, reported; returns its summary.
fn run(
    name: &str,
    title: &str,
    results: Result<Vec<wsrelay_conformance::case::CaseResult>, String>,
) -> Summary {
    let results = results.unwrap_or_else(|e| panic!("{name}: {e}"));
    report::write(&report_dir(name), title, &results).expect("write the report");
    let summary = Summary::of(&results);
    println!("{name}: {}", summary.line());
    summary
}

#[test]
fn conformance_suite() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let all = Selection::default();
        let mut summaries = vec![
            run(
                "ours",
                "wsrelay conformance: driver -> wsrelay -> wsrelay echo",
                wsrelay_conformance::run_client_side(&Echo::Ours, &all).await,
            ),
            // Behind an echo that checks nothing, every refusal the driver sees is the relay's.
            run(
                "blind",
                "wsrelay conformance: driver -> wsrelay -> blind echo (checks nothing)",
                wsrelay_conformance::run_client_side(&Echo::Blind, &all).await,
            ),
        ];
        match harness::python() {
            Ok(python) => {
                summaries.push(run(
                    "python-echo",
                    "wsrelay conformance: driver -> wsrelay -> Python websockets echo",
                    wsrelay_conformance::run_client_side(&Echo::Python(python.clone()), &all).await,
                ));
                summaries.push(run(
                    "python-client",
                    "wsrelay conformance: Python websockets client -> wsrelay -> driver",
                    wsrelay_conformance::run_upstream_side(&python, &all).await,
                ));
            }
            Err(why) => println!("SKIPPED the Python echo and the Python client runs: {why}"),
        }
        let total = summaries.iter().fold(Summary::default(), |a, s| Summary {
            ok: a.ok + s.ok,
            non_strict: a.non_strict + s.non_strict,
            failed: a.failed + s.failed,
            skipped: a.skipped + s.skipped,
        });
        println!("conformance total: {}", total.line());
        assert_eq!(
            total.failed, 0,
            "conformance failures: see target/conformance/*/report.md"
        );
    });
}
