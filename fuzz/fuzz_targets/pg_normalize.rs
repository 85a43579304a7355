//! Arbitrary bytes as SQL text, a startup packet body and a message stream: the normalizer
//! gives bounded text with no quoted value copied into it, the codec an error or a value,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_postgres::{codec, sql};

fuzz_target!(|data: &[u8]| {
    for s in sql::normalize(data) {
        assert!(s.text.len() <= sql::MAX_TEXT + 3);
        assert_eq!(s.fingerprint.len(), 16);
    }
    let _ = sql::normalize_one(data);
    let _ = codec::parse_startup(data);
    let mut rest = data;
    while let Ok(Some((_, len))) = codec::frame(rest, 1 << 20) {
        let Some(next) = rest.get(len..) else { break };
        rest = next;
    }
});
