//! Behaviour of the scrubber on single lines, table-driven.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;

fn tags() -> Scrubber {
    Scrubber::new(&ScrubConfig::default(), None).unwrap()
}

fn scrubbed(text: &str) -> String {
    tags().scrub(text, &mut Counts::new()).into_owned()
}

#[test]
fn smoke() {
    for line in [
        "contact alice@example.com now",
        "card 4111 1111 1111 1111 ok",
        "from 192.168.1.20 and 2001:db8::1",
        "password=hunter2 token: abc123",
    ] {
        println!("{line} => {}", scrubbed(line));
    }
}
