//! Arbitrary bytes as a JSON line (and as a stream of lines): no panic, idempotence.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_scrub::{Counts, LineFormat, ScrubConfig, Scrubber};
use std::sync::OnceLock;

fn scrubber() -> &'static Scrubber {
    static SCRUBBER: OnceLock<Scrubber> = OnceLock::new();
    SCRUBBER.get_or_init(|| Scrubber::new(&ScrubConfig::default(), None).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let once = scrubber().scrub_json_line(&text, &mut Counts::new()).into_owned();
    let twice = scrubber().scrub_json_line(&once, &mut Counts::new());
    assert_eq!(twice, once, "JSON scrubbing is not idempotent");
    let mut lines = scrubber().lines(LineFormat::Json);
    for line in text.split('\n') {
        lines.scrub_line(line, &mut Counts::new());
    }
});
