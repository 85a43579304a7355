//! Arbitrary bytes as an inventory file (AWS CLI JSON, Terraform plan JSON, rampart TOML):
//! an error or an inventory, never a panic; whatever parses can be checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_network::{NetworkConfig, check, import_json, import_toml};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = NetworkConfig::default();
    if let Ok(inventory) = import_json("fuzz.json", text) {
        let _ = check(&inventory, &config);
    }
    if let Ok(inventory) = import_toml("fuzz.toml", text) {
        let _ = check(&inventory, &config);
    }
});
