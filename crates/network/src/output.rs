//! Renderings of a report: a human table, JSON, and SARIF 2.1.0 for code-scanning UIs.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::check::{Report, counts};
use crate::engine::Verdict;
use crate::finding::{Finding, Severity, rules};
use crate::matrix::{CellState, Matrix};

/// The report as a table for a terminal: findings with their paths, then a summary line.
pub fn render_table(report: &Report) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let control = f.control.map_or_else(|| "-".to_owned(), |c| c.to_string());
        let _ = writeln!(
            out,
            "{:<8} {:<6} {:<44} {}",
            f.severity.as_str().to_uppercase(),
            control,
            f.rule.id,
            f.resource
        );
        let _ = writeln!(out, "         {}", f.message);
        if let Some(cis) = f.rule.cis {
            let _ = writeln!(out, "         ({cis})");
        }
        for (i, hop) in f.path.iter().enumerate() {
            let _ = writeln!(out, "         {:>2}. {hop}", i + 1);
        }
    }
    let s = &report.stats;
    let _ = writeln!(
        out,
        "{} VPCs, {} subnets, {} security groups ({} rules), {} endpoints, {} peerings, {} environments; {} flow evaluations",
        s.vpcs,
        s.subnets,
        s.security_groups,
        s.security_group_rules,
        s.endpoints,
        s.peerings,
        s.environments,
        s.evaluations
    );
    let summary: Vec<String> = counts(&report.findings)
        .iter()
        .map(|(sev, n)| format!("{n} {sev}"))
        .collect();
    let verdict = if report.has_violations() {
        "VIOLATIONS"
    } else {
        "clean"
    };
    let _ = writeln!(out, "{verdict}: {}", summary.join(", "));
    out
}

/// The matrix as a text grid: flow counts, `!` marking violations, `-` not computed.
pub fn render_matrix_table(matrix: &Matrix) -> String {
    let width = matrix
        .parties
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(4)
        .max(8)
        + 2;
    let mut out = format!("{:width$}", "from \\ to");
    for p in &matrix.parties {
        let _ = write!(out, "{p:>width$}");
    }
    out.push('\n');
    for from in &matrix.parties {
        let _ = write!(out, "{from:width$}");
        for to in &matrix.parties {
            let text = match matrix.cell(from, to) {
                Some(c) => match c.state {
                    CellState::Violation => format!("{}!", c.flows),
                    CellState::Allowed | CellState::None => c.flows.to_string(),
                    CellState::NotComputed => "-".to_owned(),
                },
                None => "-".to_owned(),
            };
            let _ = write!(out, "{text:>width$}");
        }
        out.push('\n');
    }
    out
}

/// An explanation as text, hop by hop.
pub fn render_verdict(verdict: &Verdict) -> String {
    let mut out = String::new();
    let path = match verdict {
        Verdict::Reachable(f) => {
            let _ = writeln!(out, "REACHABLE: {} -> {}: {}", f.from, f.to, f.traffic);
            if let Some(a) = &f.addresses {
                let _ = writeln!(out, "from addresses: {a}");
            }
            &f.path
        }
        Verdict::Blocked { from, to, path } => {
            let _ = writeln!(out, "BLOCKED: {from} -> {to}");
            path
        }
    };
    for (i, hop) in path.iter().enumerate() {
        let _ = writeln!(out, "{:>3}. {hop}", i + 1);
    }
    out
}

/// SARIF 2.1.0: one run, every rule in the driver, one result per finding with the path as
/// a code flow. `artifact` is the location results point at when a finding names no file
/// (code-scanning UIs need one): the inventory directory or its first file.
pub fn render_sarif(report: &Report, artifact: &str) -> Value {
    let rule_list: Vec<Value> = rules::ALL
        .iter()
        .map(|r| {
            let mut tags = vec![json!("security"), json!("network")];
            if let Some(cis) = r.cis {
                tags.push(json!(cis));
            }
            json!({
                "id": r.id,
                "name": r.id.replace(['/', '-'], "_"),
                "shortDescription": { "text": r.summary },
                "fullDescription": { "text": r.cis.map_or_else(|| r.summary.to_owned(), |c| format!("{} ({c})", r.summary)) },
                "properties": { "tags": tags },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| sarif_result(f, artifact))
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "rampart-network",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/rampart/rampart",
                "rules": rule_list,
            }},
            "results": results,
        }],
    })
}

fn sarif_result(f: &Finding, artifact: &str) -> Value {
    let level = match f.severity {
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Warning => "note",
    };
    let rule_index = rules::ALL.iter().position(|r| r.id == f.rule.id);
    let uri = f.file.as_deref().unwrap_or(artifact);
    let location = json!({
        "physicalLocation": { "artifactLocation": { "uri": uri } },
        "logicalLocations": [{ "name": f.resource, "kind": "resource" }],
    });
    let mut result = json!({
        "ruleId": f.rule.id,
        "level": level,
        "message": { "text": f.message },
        "locations": [location],
        "partialFingerprints": { "rampartFinding/v1": format!("{}|{}", f.rule.id, f.resource) },
        "properties": {
            "severity": f.severity.as_str(),
            "control": f.control.map(|c| c.id()),
            "relatedControls": f.related.iter().map(|c| c.id()).collect::<Vec<_>>(),
        },
    });
    if let (Some(i), Some(obj)) = (rule_index, result.as_object_mut()) {
        obj.insert("ruleIndex".to_owned(), json!(i));
    }
    if !f.path.is_empty()
        && let Some(obj) = result.as_object_mut()
    {
        let steps: Vec<Value> = f
            .path
            .iter()
            .map(|h| {
                json!({ "location": {
                    "message": { "text": h.detail },
                    "logicalLocations": [{ "name": h.resource, "kind": "resource" }],
                }})
            })
            .collect();
        obj.insert(
            "codeFlows".to_owned(),
            json!([{ "threadFlows": [{ "locations": steps }] }]),
        );
    }
    result
}
