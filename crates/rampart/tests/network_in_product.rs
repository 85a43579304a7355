//! The network checker inside the product: the configured inventory feeds the report and
//! the `/network` page, and a change to the inventory is picked up without a restart.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../network/tests/fixtures")
        .join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "network.toml" {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn status_of(r: &Rampart, id: &str) -> String {
    let json: serde_json::Value =
        serde_json::from_str(&cli_ok(r, &["report", "--format", "json"])).unwrap();
    json["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap()["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn an_open_staging_production_peering_fails_net2_in_the_report_and_on_the_page() {
    let inventory = tempfile::tempdir().unwrap();
    copy_dir(&fixture("staging-prod-open"), inventory.path());
    let extra = format!(
        "[network]\ninventory = \"{}\"\npeerings = [\"pcx-0sp\"]\n",
        inventory.path().display()
    );
    let r = Rampart::start(bin(), &extra);
    assert_eq!(status_of(&r, "NET-2"), "fail");
    assert_eq!(status_of(&r, "NET-1"), "pass", "the peering is declared");

    let curl = r.curl();
    enroll(&curl, &r.admin_enroll_url);
    let page = curl.get("/network");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<svg"), "the matrix is drawn");
    assert!(page.body.contains("NET-2"), "{}", page.body);
    assert!(
        page.body.contains("pcx-0sp"),
        "the finding names the peering on its path"
    );
    let audit = cli_ok(
        &r,
        &["audit", "search", "--action", "network.check", "--json"],
    );
    assert!(audit.contains("\"outcome\":\"failure\""), "{audit}");

    // Close the groups: the server notices the change and the page follows.
    copy_dir(&fixture("staging-prod-closed"), inventory.path());
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let audit = cli_ok(
            &r,
            &[
                "audit",
                "search",
                "--action",
                "network.check",
                "--outcome",
                "success",
                "--json",
            ],
        );
        if audit.contains("network.check") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the re-check did not happen: {}",
            r.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(status_of(&r, "NET-2"), "pass");
    let dash = curl.get("/");
    assert!(
        dash.body
            .contains("No flow exists between two environments"),
        "{}",
        dash.body
    );
}

#[test]
fn a_missing_inventory_directory_is_a_config_error() {
    let r = Rampart::start(bin(), "");
    let config = r.data_dir().join("rampart.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[network]\ninventory = \"/nonexistent/inventory\"\n");
    std::fs::write(&config, text).unwrap();
    let out = r.cli(&["check-config"]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("network.inventory") && err.contains("/nonexistent/inventory"),
        "{err}"
    );
}
