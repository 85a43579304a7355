//! Any bytes as both directions of an SFTP stream, fed in uneven pieces: operations or
//! nothing, never a panic, and paths stay bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_ssh::sftp::{Op, Side, Watcher};

fuzz_target!(|data: &[u8]| {
    let mut w = Watcher::default();
    for (i, piece) in data.chunks(7 + data.len() % 13).enumerate() {
        let side = if i % 3 == 2 { Side::Reply } else { Side::Request };
        for op in w.feed(side, piece) {
            if let Op::File { path, .. } | Op::Path { path, .. } = op {
                assert!(path.chars().count() <= 2 * 1024 + 4);
            }
        }
    }
});
