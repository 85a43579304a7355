//! Any bytes as an SSH user name: a destination or a refusal that does not echo the input,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_ssh::user::Destination;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Destination::parse(&text) {
        Ok(d) => assert!(d.person.len() <= 64),
        Err(e) => assert!(e.to_string().len() < 200),
    }
});
