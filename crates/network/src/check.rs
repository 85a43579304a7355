//! The checks: pure functions from a [`Model`] to findings, each with the explaining path.
//!
//! Bulk work never traces: flows are first computed without explanations, and only the
//! witness of each finding is evaluated again with its path. Work is grouped by peering
//! and by VPC so it grows with the flows that can exist, not with all endpoint pairs.

mod exposure;
mod hygiene;
mod provider;
mod segmentation;

use serde::Serialize;

use crate::config::NetworkConfig;
use crate::engine::Model;
use crate::finding::{Finding, Severity};
use crate::inventory::Inventory;
use crate::matrix::Matrix;

/// Everything `rampart net check` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// Which flows exist between environments, the internet and providers.
    pub matrix: Matrix,
    /// What was analysed.
    pub stats: Stats,
}

/// Counts of what the inventory held and what the checks did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// VPCs.
    pub vpcs: usize,
    /// Subnets.
    pub subnets: usize,
    /// Security groups.
    pub security_groups: usize,
    /// Security group rules.
    pub security_group_rules: usize,
    /// Endpoints (interfaces, databases, hosts).
    pub endpoints: usize,
    /// Peering connections.
    pub peerings: usize,
    /// Environments found.
    pub environments: usize,
    /// Flow evaluations performed.
    pub evaluations: usize,
}

impl Report {
    /// Whether any finding is a violation (exit code 1).
    pub fn has_violations(&self) -> bool {
        self.findings.iter().any(|f| f.severity.is_violation())
    }
}

/// Runs every check.
pub fn check(inventory: &Inventory, config: &NetworkConfig) -> Report {
    let model = Model::new(inventory, config);
    let mut matrix = Matrix::new(&model);
    let mut findings: Vec<Finding> = inventory.notes.clone();
    findings.extend(model.warnings().iter().cloned());
    let mut evaluations = 0;
    findings.extend(segmentation::environments(&model));
    findings.extend(segmentation::peerings(&model));
    findings.extend(segmentation::cross_environment(
        &model,
        &mut matrix,
        &mut evaluations,
    ));
    findings.extend(exposure::internet(&model, &mut matrix, &mut evaluations));
    findings.extend(exposure::admin_ports(&model, &mut evaluations));
    findings.extend(provider::provider(&model, &mut matrix, &mut evaluations));
    findings.extend(hygiene::hygiene(&model));
    findings.sort_by(|a, b| {
        (a.severity, a.control, a.rule.id, &a.resource).cmp(&(
            b.severity,
            b.control,
            b.rule.id,
            &b.resource,
        ))
    });
    let stats = Stats {
        vpcs: inventory.vpcs.len(),
        subnets: inventory.subnets.len(),
        security_groups: inventory.groups.len(),
        security_group_rules: inventory
            .groups
            .iter()
            .map(|g| g.ingress.len() + g.egress.len())
            .sum(),
        endpoints: inventory.endpoints.len(),
        peerings: inventory.peerings.len(),
        environments: matrix.environments().len(),
        evaluations,
    };
    Report {
        findings,
        matrix,
        stats,
    }
}

/// Counts of a finding list by severity, for the summary line of every output.
pub fn counts(findings: &[Finding]) -> [(Severity, usize); 4] {
    [
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Warning,
    ]
    .map(|s| (s, findings.iter().filter(|f| f.severity == s).count()))
}
