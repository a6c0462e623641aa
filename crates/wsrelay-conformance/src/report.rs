//! The report: a Markdown table per group and a JSON file, and the summary line.

use std::fmt::Write as _;
use std::path::Path;

use crate::case::{CaseResult, Group, Verdict};

/// Counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Strict passes.
    pub ok: usize,
    /// Passes the RFC allows but that differ from the strict outcome.
    pub non_strict: usize,
    /// Failures.
    pub failed: usize,
    /// Cases not run in this configuration.
    pub skipped: usize,
}

impl Summary {
    /// Counts `results`.
    pub fn of(results: &[CaseResult]) -> Summary {
        let mut s = Summary::default();
        for r in results {
            match r.verdict {
                Verdict::Pass => s.ok += 1,
                Verdict::NonStrict => s.non_strict += 1,
                Verdict::Fail => s.failed += 1,
                Verdict::Skipped => s.skipped += 1,
            }
        }
        s
    }

    /// The final line: `N passed, N failed` (non-strict passes counted as passed and named).
    pub fn line(&self) -> String {
        format!(
            "{} passed, {} failed ({} OK, {} NON-STRICT, {} skipped)",
            self.ok + self.non_strict,
            self.failed,
            self.ok,
            self.non_strict,
            self.skipped
        )
    }
}

fn cell(s: &str) -> String {
    let mut out = s.replace('|', "\\|").replace('\n', " ");
    if out.len() > 400 {
        let mut end = 400;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('…');
    }
    out
}

/// The Markdown report.
pub fn markdown(title: &str, results: &[CaseResult]) -> String {
    let mut md = format!("# {title}\n\n**{}**\n", Summary::of(results).line());
    for group in Group::ALL {
        let rows: Vec<&CaseResult> = results.iter().filter(|r| r.group == group).collect();
        if rows.is_empty() {
            continue;
        }
        let s = Summary::of(&rows.iter().map(|r| (*r).clone()).collect::<Vec<_>>());
        let _ = write!(
            md,
            "\n## {} {} — {}\n\n",
            group.number(),
            group.title(),
            s.line()
        );
        md.push_str("| case | description | expected | observed | verdict | ms |\n|---|---|---|---|---|---|\n");
        for r in rows {
            let verdict = match r.verdict {
                Verdict::Pass => r.verdict.as_str().to_owned(),
                _ => format!("{}: {}", r.verdict.as_str(), r.note),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                r.id,
                cell(&r.description),
                cell(&r.expected),
                cell(&r.observed),
                cell(&verdict),
                r.duration.as_millis()
            );
        }
    }
    md
}

/// The JSON report.
pub fn json(title: &str, results: &[CaseResult]) -> serde_json::Value {
    let s = Summary::of(results);
    serde_json::json!({
        "title": title,
        "passed": s.ok + s.non_strict,
        "ok": s.ok,
        "non_strict": s.non_strict,
        "failed": s.failed,
        "skipped": s.skipped,
        "cases": results.iter().map(|r| serde_json::json!({
            "id": r.id,
            "group": r.group.number(),
            "description": r.description,
            "expected": r.expected,
            "observed": r.observed,
            "verdict": r.verdict.as_str(),
            "note": r.note,
            "ms": r.duration.as_millis() as u64,
        })).collect::<Vec<_>>(),
    })
}

/// Writes `report.md` and `report.json` into `dir`.
pub fn write(dir: &Path, title: &str, results: &[CaseResult]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("report.md"), markdown(title, results))?;
    let json =
        serde_json::to_string_pretty(&json(title, results)).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("report.json"), json)
}
