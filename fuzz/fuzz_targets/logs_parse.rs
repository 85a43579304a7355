//! Arbitrary bytes as a log push in every format rampart accepts: NDJSON, Loki JSON, Loki
//! snappy protobuf (raw and compressed), syslog messages and RFC 5425 framing. No panic,
//! and no more entries than the input could hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_logs::parse::{loki, ndjson, syslog};

fuzz_target!(|data: &[u8]| {
    let parsed = ndjson::parse(data);
    assert!(parsed.entries.len() + parsed.errors.len() <= data.len() + 1);
    let _ = loki::parse_json(data);
    let _ = loki::parse_protobuf(data, 1 << 16);
    if let Ok(compressed) = snap::raw::Encoder::new().compress_vec(data) {
        let _ = loki::parse_protobuf(&compressed, 1 << 16);
    }
    let received = jiff::Timestamp::from_second(1_800_000_000).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let _ = syslog::parse(data, received);
    let mut framer = syslog::Framer::new(512);
    for chunk in data.chunks(7) {
        framer.push(chunk);
        while let Some(frame) = framer.next_frame() {
            match frame {
                Ok(f) => {
                    assert!(f.len() <= 512);
                    let _ = syslog::parse(&f, received);
                }
                Err(_) => return,
            }
        }
    }
    let _ = framer.finish();
});
