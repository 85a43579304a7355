//! Every check against hand-written fixtures in the AWS CLI's own shapes, each in a
//! failing and a passing variant.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::PathBuf;

use rampart_core::ControlId;
use rampart_network::{
    CONFIG_FILE_NAME, CellState, ControlStatus, NetworkConfig, Report, TrafficSet, Verdict, check,
    explain, load_inventory, matrix_svg, render_sarif, summarize,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn config(name: &str) -> NetworkConfig {
    let path = fixture(name).join(CONFIG_FILE_NAME);
    if path.exists() {
        NetworkConfig::load(&path).unwrap()
    } else {
        NetworkConfig::default()
    }
}

fn run(name: &str) -> Report {
    let inv = load_inventory(&fixture(name)).unwrap();
    check(&inv, &config(name))
}

fn rule_ids(r: &Report) -> Vec<&'static str> {
    r.findings
        .iter()
        .filter(|f| f.severity.is_violation())
        .map(|f| f.rule.id)
        .collect()
}

#[test]
fn open_groups_over_a_staging_production_peering_violate_net2_with_a_path() {
    let r = run("staging-prod-open");
    let net2: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.control == Some(ControlId::Net2) && f.severity.is_violation())
        .collect();
    assert_eq!(net2.len(), 2, "{:#?}", r.findings);
    let f = net2[0];
    let hops: Vec<String> = f.path.iter().map(ToString::to_string).collect();
    let joined = hops.join("\n");
    assert!(joined.contains("pcx-0sp"), "{joined}");
    assert!(joined.contains("rtb-0"), "{joined}");
    assert!(joined.contains("acl-0"), "{joined}");
    assert!(joined.contains("sg-0"), "{joined}");
    assert_eq!(
        r.matrix.cell("staging", "production").map(|c| c.state),
        Some(CellState::Violation)
    );
}

#[test]
fn the_same_peering_with_closed_groups_has_no_cross_environment_flow() {
    let r = run("staging-prod-closed");
    assert!(
        !r.findings.iter().any(|f| f.concerns(ControlId::Net2)),
        "{:#?}",
        r.findings
    );
    assert_eq!(
        r.matrix.cell("staging", "production").map(|c| c.state),
        Some(CellState::None)
    );
    assert!(!r.has_violations(), "{:#?}", r.findings);
}

#[test]
fn an_undeclared_peering_violates_net1() {
    let inv = load_inventory(&fixture("staging-prod-closed")).unwrap();
    let r = check(&inv, &NetworkConfig::default());
    assert!(rule_ids(&r).contains(&"NET-1/undeclared-peering"));
}

#[test]
fn a_provider_let_in_by_the_acl_and_groups_violates_ext2() {
    let r = run("provider-nacl-open");
    let f = r
        .findings
        .iter()
        .find(|f| f.rule.id == "EXT-2/provider-can-reach-us")
        .expect("EXT-2 finding");
    let joined: Vec<String> = f.path.iter().map(ToString::to_string).collect();
    assert!(joined.join("\n").contains("acl-0prod"), "{joined:?}");
    assert_eq!(
        r.matrix
            .cell("provider dbprovider", "production")
            .map(|c| c.state),
        Some(CellState::Violation)
    );
}

#[test]
fn a_one_way_provider_peering_passes_ext2_and_our_flow_to_it_exists() {
    let r = run("provider-one-way");
    assert!(
        !r.findings.iter().any(|f| f.concerns(ControlId::Ext2)),
        "{:#?}",
        r.findings
    );
    let out = r.matrix.cell("production", "provider dbprovider").unwrap();
    assert_eq!((out.state, out.flows), (CellState::Allowed, 1));
    let ext2 = summarize(&r)
        .into_iter()
        .find(|s| s.control == ControlId::Ext2)
        .unwrap();
    assert_eq!(ext2.status, ControlStatus::Pass);
}

#[test]
fn ssh_open_to_the_world_violates_acc5_acc4_and_cis() {
    let r = run("ssh-open-to-world");
    let ids = rule_ids(&r);
    assert!(
        ids.contains(&"ACC-5/admin-port-bypasses-gateway"),
        "{ids:?}"
    );
    assert!(ids.contains(&"ACC-4/public-resource"), "{ids:?}");
    assert!(ids.contains(&"CIS-5.2/admin-port-open-to-world"), "{ids:?}");
    let acc5 = r
        .findings
        .iter()
        .find(|f| f.rule.id == "ACC-5/admin-port-bypasses-gateway")
        .unwrap();
    assert!(acc5.resource == "eni-0legacy", "{acc5:?}");
    assert!(
        acc5.path
            .iter()
            .any(|h| h.resource == "igw-0prod" || h.detail.contains("igw-0prod"))
    );
}

#[test]
fn a_gateway_only_setup_is_clean() {
    let r = run("clean");
    assert!(!r.has_violations(), "{:#?}", r.findings);
    let summary = summarize(&r);
    assert!(
        summary.iter().all(|s| s.status == ControlStatus::Pass),
        "{summary:#?}"
    );
}

#[test]
fn explain_names_the_blocking_hop() {
    let dir = fixture("clean");
    let inv = load_inventory(&dir).unwrap();
    let cfg = config("clean");
    let tcp22 = TrafficSet::tcp_ports(&[22]);
    let via_gateway = explain(&inv, &cfg, "i-0gateway", "i-0app", &tcp22).unwrap();
    assert!(
        matches!(via_gateway, Verdict::Reachable(_)),
        "{via_gateway:#?}"
    );
    let from_web = explain(&inv, &cfg, "i-0web", "i-0app", &tcp22).unwrap();
    let Verdict::Blocked { path, .. } = from_web else {
        panic!("web must not reach ssh: {from_web:#?}")
    };
    assert!(
        path.last().unwrap().detail.starts_with("blocked"),
        "{path:#?}"
    );
    assert!(explain(&inv, &cfg, "nobody", "i-0app", &tcp22).is_err());
}

#[test]
fn sarif_lists_every_violation_as_a_result() {
    let r = run("staging-prod-open");
    let sarif = render_sarif(&r, "inventory");
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), r.findings.len());
    assert!(
        results
            .iter()
            .any(|x| x["ruleId"] == "NET-2/cross-environment-flow" && x["level"] == "error")
    );
}

#[test]
fn the_matrix_svg_shows_the_violation() {
    let r = run("staging-prod-open");
    let svg = matrix_svg(&r.matrix);
    assert!(svg.contains("staging") && svg.contains("production") && svg.contains("#f4a6a6"));
}

#[test]
fn a_terraform_rule_unknown_until_apply_is_reported_not_guessed() {
    let r = run("terraform-unknown");
    let unknown: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.rule.id == "input/unknown-until-apply")
        .collect();
    assert_eq!(unknown.len(), 1, "{:#?}", r.findings);
    assert_eq!(unknown[0].resource, "aws_security_group_rule.admin_ssh");
    // References to resources created by the same plan resolve through their addresses:
    // the instance is public through the planned gateway and exposes 443 only.
    let cell = r.matrix.cell("internet", "production").unwrap();
    assert_eq!(
        (cell.state, cell.flows),
        (CellState::Allowed, 1),
        "{:#?}",
        r.findings
    );
    assert!(
        !r.findings
            .iter()
            .any(|f| f.rule.id == "ACC-5/admin-port-bypasses-gateway")
    );
    assert!(!r.has_violations(), "{:#?}", r.findings);
}
