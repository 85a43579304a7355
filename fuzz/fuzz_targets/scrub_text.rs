//! Arbitrary bytes as text: no panic, bounded growth, idempotence, in both modes; and the
//! lines `clean_prefix` passes over (the sieve's fast path) are ones scrubbing leaves alone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_scrub::{Counts, PseudonymKey, ReplacementMode, ScrubConfig, Scrubber};
use std::sync::OnceLock;

fn scrubbers() -> &'static [Scrubber; 2] {
    static SCRUBBERS: OnceLock<[Scrubber; 2]> = OnceLock::new();
    SCRUBBERS.get_or_init(|| {
        let key = PseudonymKey::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
        let pseudonym = ScrubConfig { mode: ReplacementMode::Pseudonym, ..ScrubConfig::default() };
        [
            Scrubber::new(&ScrubConfig::default(), None).unwrap(),
            Scrubber::new(&pseudonym, Some(key)).unwrap(),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    for scrubber in scrubbers() {
        let once = scrubber.scrub_bytes(data, &mut Counts::new()).into_owned();
        // Lossy decoding turns one bad byte into three; each finding eats at least 5 bytes.
        assert!(once.len() <= 4 * 3 * data.len() + 64, "output grew too much");
        let twice = scrubber.scrub(&once, &mut Counts::new());
        assert_eq!(twice, once, "scrubbing is not idempotent");
    }
    let scrubber = &scrubbers()[0];
    let clean = scrubber.clean_prefix(data);
    assert!(clean == 0 || data[clean - 1] == b'\n', "the clean prefix ends inside a line");
    let prefix = std::str::from_utf8(&data[..clean]).expect("the clean prefix is not UTF-8");
    for line in prefix.split_terminator('\n') {
        let scrubbed = scrubber.scrub(line, &mut Counts::new());
        assert_eq!(scrubbed, line, "a line of the clean prefix holds something to scrub");
    }
});
