//! The network checker in the product: the configured inventory is checked at start and
//! again whenever its files change; the result feeds the report (NET-1, NET-2, NET-3,
//! ACC-4, ACC-5, EXT-2) and the `/network` page (matrix as SVG, findings with paths).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rampart_audit::{Action, Actor, AuditEvent, Outcome};
use rampart_core::ControlId;
use rampart_network::{ControlStatus, NETWORK_CONTROLS, NetworkConfig, Report};
use rampart_report::Finding;
use rampart_store::Store;

/// The latest check of the inventory.
#[derive(Debug, Clone)]
pub enum NetworkState {
    /// No inventory is configured (`network.inventory`).
    NotConfigured,
    /// The inventory could not be read; the sentence says why.
    Failed {
        /// When it was tried.
        at: jiff::Timestamp,
        /// Why it failed.
        error: String,
    },
    /// The result of the last check.
    Checked {
        /// When.
        at: jiff::Timestamp,
        /// What it found.
        report: Arc<Report>,
    },
}

/// Shared between the re-check task, the UI and the report.
pub type SharedNetwork = Arc<RwLock<NetworkState>>;

/// Loads and checks the inventory once.
pub fn check_now(config: &NetworkConfig) -> NetworkState {
    let at = jiff::Timestamp::now();
    let Some(dir) = &config.inventory else {
        return NetworkState::NotConfigured;
    };
    match rampart_network::load_inventory(dir) {
        Ok(inventory) => NetworkState::Checked {
            at,
            report: Arc::new(rampart_network::check(&inventory, config)),
        },
        Err(e) => NetworkState::Failed {
            at,
            error: e.to_string(),
        },
    }
}

/// Report findings for the six network controls from a state.
pub fn findings(state: &NetworkState) -> Vec<Finding> {
    match state {
        NetworkState::NotConfigured => NETWORK_CONTROLS
            .iter()
            .map(|&c| Finding::not_checked(c, "not checked: set network.inventory to a directory of AWS, Terraform or rampart inventory files"))
            .collect(),
        NetworkState::Failed { error, .. } => NETWORK_CONTROLS
            .iter()
            .map(|&c| Finding::not_checked(c, format!("the network inventory could not be read: {error}")))
            .collect(),
        NetworkState::Checked { at, report } => rampart_network::summarize(report)
            .into_iter()
            .map(|s| {
                let pass = s.status == ControlStatus::Pass;
                let mut evidence = vec![format!(
                    "inventory checked {}: {} VPCs, {} security groups, {} endpoints",
                    at.strftime("%Y-%m-%d %H:%M UTC"),
                    report.stats.vpcs,
                    report.stats.security_groups,
                    report.stats.endpoints
                )];
                evidence.extend(s.evidence.into_iter().take(20));
                Finding::new(s.control, pass, summary(s.control, pass), evidence)
            })
            .collect(),
    }
}

fn summary(control: ControlId, pass: bool) -> &'static str {
    match (control, pass) {
        (_, false) => {
            "The network check found violations; each comes with the path that allows it."
        }
        (ControlId::Net1, true) => {
            "Each environment has its own networks; every peering between them is declared."
        }
        (ControlId::Net2, true) => "No flow exists between two environments, on any port.",
        (ControlId::Net3 | ControlId::Acc4, true) => {
            "Only the allowed front door ports are reachable from the internet."
        }
        (ControlId::Acc5, true) => "Administrative ports are reachable only from the gateway.",
        (ControlId::Ext2, true) => {
            "The provider cannot reach us; we reach the provider's database ports."
        }
        (_, true) => "The network check found no violation.",
    }
}

/// Re-checks whenever a file of the inventory changes (polled every `every`), recording
/// each check in the audit log.
pub async fn keep_checked(
    config: NetworkConfig,
    shared: SharedNetwork,
    store: Arc<Store>,
    every: Duration,
) {
    let Some(dir) = config.inventory.clone() else {
        return;
    };
    let mut seen = None;
    loop {
        let stamp = fingerprint(&dir);
        if seen.as_ref() != Some(&stamp) {
            seen = Some(stamp);
            let cfg = config.clone();
            let state = tokio::task::spawn_blocking(move || check_now(&cfg))
                .await
                .unwrap_or_else(|e| NetworkState::Failed {
                    at: jiff::Timestamp::now(),
                    error: e.to_string(),
                });
            let event = match &state {
                NetworkState::Checked { report, .. } => {
                    let violations = report
                        .findings
                        .iter()
                        .filter(|f| f.severity.is_violation())
                        .count();
                    AuditEvent::new(
                        Actor::System,
                        Action::NetworkCheck,
                        dir.display().to_string(),
                    )
                    .outcome(if violations == 0 {
                        Outcome::Success
                    } else {
                        Outcome::Failure
                    })
                    .detail("violations", violations.to_string())
                }
                NetworkState::Failed { error, .. } => AuditEvent::new(
                    Actor::System,
                    Action::NetworkCheck,
                    dir.display().to_string(),
                )
                .outcome(Outcome::Failure)
                .detail("error", crate::scrubbed(error)),
                NetworkState::NotConfigured => return,
            };
            if let Err(e) = store.append_audit(&[event]).await {
                tracing::error!(error = %e, "could not audit the network check");
            }
            if let Ok(mut s) = shared.write() {
                *s = state;
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Names, sizes and modification times of every file under `dir` (two levels deep).
fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() && depth < 2 {
                stack.push((path, depth + 1));
            } else if meta.is_file() {
                out.push((path, meta.len(), meta.modified().ok()));
            }
        }
    }
    out.sort();
    out
}
