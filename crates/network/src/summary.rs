//! Per-control summary for the security page report: pass or fail, with evidence lines.

use rampart_core::ControlId;
use serde::Serialize;

use crate::check::Report;
use crate::matrix::{CellState, INTERNET};

/// The controls this crate checks, in the order of the page.
pub const NETWORK_CONTROLS: [ControlId; 6] = [
    ControlId::Acc4,
    ControlId::Acc5,
    ControlId::Net1,
    ControlId::Net2,
    ControlId::Net3,
    ControlId::Ext2,
];

/// Whether the network check proves a control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlStatus {
    /// No violation.
    Pass,
    /// At least one violation.
    Fail,
}

/// The verdict on one control with the lines the report shows beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlSummary {
    /// The control.
    pub control: ControlId,
    /// Pass or fail.
    pub status: ControlStatus,
    /// Evidence, most important first.
    pub evidence: Vec<String>,
}

/// How many violation messages a failing control lists before counting the rest.
const SHOWN: usize = 5;

/// Summarizes a report for [`NETWORK_CONTROLS`].
pub fn summarize(report: &Report) -> Vec<ControlSummary> {
    NETWORK_CONTROLS
        .iter()
        .map(|&control| {
            let violations: Vec<&str> = report
                .findings
                .iter()
                .filter(|f| f.severity.is_violation() && f.concerns(control))
                .map(|f| f.message.as_str())
                .collect();
            let warnings = report
                .findings
                .iter()
                .filter(|f| {
                    !f.severity.is_violation() && (f.concerns(control) || f.control.is_none())
                })
                .count();
            let mut evidence = Vec::new();
            let status = if violations.is_empty() {
                evidence.push(pass_line(report, control));
                ControlStatus::Pass
            } else {
                evidence.push(format!("{} violation(s)", violations.len()));
                evidence.extend(violations.iter().take(SHOWN).map(|m| (*m).to_owned()));
                if violations.len() > SHOWN {
                    evidence.push(format!("… and {} more", violations.len() - SHOWN));
                }
                ControlStatus::Fail
            };
            if warnings > 0 {
                evidence.push(format!(
                    "{warnings} input warning(s) may affect this result"
                ));
            }
            ControlSummary {
                control,
                status,
                evidence,
            }
        })
        .collect()
}

fn pass_line(report: &Report, control: ControlId) -> String {
    let s = &report.stats;
    let m = &report.matrix;
    let from_internet: usize = m
        .cells
        .iter()
        .filter(|c| c.from == INTERNET)
        .map(|c| c.flows)
        .sum();
    match control {
        ControlId::Net1 => format!(
            "{} VPCs in {} environments; {} peerings, all declared",
            s.vpcs, s.environments, s.peerings
        ),
        ControlId::Net2 => format!(
            "no flow between environments ({} flows evaluated over {} endpoints)",
            s.evaluations, s.endpoints
        ),
        ControlId::Net3 | ControlId::Acc4 => {
            format!(
                "{from_internet} endpoint(s) reachable from the internet, all within the allow-list"
            )
        }
        ControlId::Acc5 => "administrative ports are reachable only from the gateway".to_owned(),
        ControlId::Ext2 => {
            let out: usize = m
                .cells
                .iter()
                .filter(|c| c.to.starts_with("provider ") && c.state == CellState::Allowed)
                .map(|c| c.flows)
                .sum();
            format!(
                "no provider can open connections to us; {out} endpoint(s) reach the provider's database ports"
            )
        }
        _ => "not checked by the network checker".to_owned(),
    }
}
