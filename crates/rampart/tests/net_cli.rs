//! `rampart net` as a user runs it: exit codes, formats, bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;

use assert_cmd::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../network/tests/fixtures")
        .join(name)
}

fn rampart() -> Command {
    Command::cargo_bin("rampart").unwrap()
}

/// A fresh directory under the system temp dir, removed by the caller.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rampart-net-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_violating_inventory_exits_1() {
    rampart()
        .args(["net", "check"])
        .arg(fixture("staging-prod-open"))
        .assert()
        .code(1);
}

#[test]
fn a_clean_inventory_exits_0() {
    rampart()
        .args(["net", "check"])
        .arg(fixture("clean"))
        .assert()
        .code(0);
}

#[test]
fn sarif_output_is_valid_sarif_2_1_0_with_results() {
    let out = rampart()
        .args(["net", "check", "--format", "sarif"])
        .arg(fixture("ssh-open-to-world"))
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let sarif: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert!(!results.is_empty());
    let rules = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    for r in results {
        let id = r["ruleId"].as_str().unwrap();
        let index = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], id, "ruleIndex must point at the rule");
        assert!(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].is_string());
    }
}

#[test]
fn json_output_parses_and_lists_findings() {
    let out = rampart()
        .args(["net", "check", "--format", "json"])
        .arg(fixture("provider-nacl-open"))
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let rules: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["rule"]["id"].as_str())
        .collect();
    assert!(rules.contains(&"EXT-2/provider-can-reach-us"), "{rules:?}");
}

#[test]
fn matrix_exits_1_on_a_violating_cell_and_0_without() {
    rampart()
        .args(["net", "matrix"])
        .arg(fixture("staging-prod-open"))
        .assert()
        .code(1);
    rampart()
        .args(["net", "matrix"])
        .arg(fixture("staging-prod-closed"))
        .assert()
        .code(0);
}

#[test]
fn explain_prints_the_path_and_the_blocking_hop() {
    let out = rampart()
        .args([
            "net", "explain", "--from", "i-0web", "--to", "i-0app", "--port", "22",
        ])
        .arg(fixture("clean"))
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("BLOCKED"), "{text}");
    assert!(text.contains("blocked: no inbound rule"), "{text}");
}

#[test]
fn unknown_party_missing_dir_and_bad_port_exit_64() {
    rampart()
        .args(["net", "explain", "--from", "nobody", "--to", "i-0app"])
        .arg(fixture("clean"))
        .assert()
        .code(64);
    rampart()
        .args(["net", "check", "/nonexistent/rampart"])
        .assert()
        .code(64);
    rampart().args(["net", "check"]).assert().code(64);
    rampart()
        .args([
            "net", "explain", "--from", "i-0web", "--to", "i-0app", "--port", "99999",
        ])
        .arg(fixture("clean"))
        .assert()
        .code(64);
}

#[test]
fn malformed_json_exits_64_naming_file_and_path() {
    let dir = scratch("malformed");
    std::fs::write(dir.join("sg.json"), r#"{"SecurityGroups":[{"GroupId":"sg-1","IpPermissions":[{"IpProtocol":"tcp","FromPort":22,"ToPort":22,"IpRanges":[{"CidrIp":"nonsense"}]}]}]}"#).unwrap();
    let out = rampart()
        .args(["net", "check"])
        .arg(&dir)
        .assert()
        .code(64)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8(out).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        err.contains("sg.json")
            && err.contains("SecurityGroups[0].IpPermissions[0].IpRanges[0].CidrIp"),
        "{err}"
    );
}

#[test]
fn an_empty_inventory_exits_64_with_a_clear_message() {
    let dir = scratch("empty");
    let out = rampart()
        .args(["net", "check"])
        .arg(&dir)
        .assert()
        .code(64)
        .get_output()
        .stderr
        .clone();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains("no network resources found")
    );
}

#[test]
fn a_bad_config_key_exits_64() {
    let dir = scratch("badconfig");
    let cfg = dir.join("rampart.toml");
    std::fs::write(&cfg, "[network]\nenviromnent_tag = \"x\"\n").unwrap();
    let out = rampart()
        .args(["net", "check", "--config"])
        .arg(&cfg)
        .arg(fixture("clean"))
        .assert()
        .code(64)
        .get_output()
        .stderr
        .clone();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(String::from_utf8(out).unwrap().contains("enviromnent_tag"));
}
