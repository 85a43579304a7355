//! Properties that hold for every input, and inputs built to be slow.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use proptest::prelude::*;
use rampart_scrub::{Counts, PseudonymKey, ReplacementMode, ScrubConfig, Scrubber};

fn tags() -> Scrubber {
    Scrubber::new(&ScrubConfig::default(), None).unwrap()
}

fn pseudonyms() -> Scrubber {
    let config = ScrubConfig {
        mode: ReplacementMode::Pseudonym,
        ..ScrubConfig::default()
    };
    let key = PseudonymKey::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
    Scrubber::new(&config, Some(key)).unwrap()
}

/// Output may grow: a one-character secret value becomes `[SECRET:0123abcd]`. Each finding
/// consumes at least five bytes of input (`pwd=x`), so four times the input plus a little
/// bounds any output.
fn growth_bound(input: usize) -> usize {
    4 * input + 64
}

/// Text made of the pieces personal data is made of, so that findings, near-misses and
/// overlaps are frequent rather than astronomically rare.
fn loggy() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("alice@example.com".to_owned()),
        Just("4111 1111 1111 1111".to_owned()),
        Just("GB82 WEST 1234 5698 7654 32".to_owned()),
        Just("+33 6 12 34 56 78".to_owned()),
        Just("10.0.0.1".to_owned()),
        Just("2001:db8::1".to_owned()),
        Just("password=".to_owned()),
        Just("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl".to_owned()),
        Just("[EMAIL]".to_owned()),
        Just("Authorization: Bearer ".to_owned()),
        Just("://u:p@".to_owned()),
        "[0-9 .:@=/+()-]{1,12}",
        "[A-Za-z]{1,8}",
        "\\PC{0,6}",
    ];
    prop::collection::vec(piece, 0..12).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn scrubbing_twice_changes_nothing_more(text in loggy()) {
        for s in [tags(), pseudonyms()] {
            let once = s.scrub(&text, &mut Counts::new()).into_owned();
            let twice = s.scrub(&once, &mut Counts::new()).into_owned();
            prop_assert_eq!(&twice, &once);
            let json = format!("{{\"msg\":{},\"email\":{}}}", serde_json::to_string(&text).unwrap(), serde_json::to_string(&text).unwrap());
            let once = s.scrub_json_line(&json, &mut Counts::new()).into_owned();
            let twice = s.scrub_json_line(&once, &mut Counts::new()).into_owned();
            prop_assert_eq!(twice, once);
        }
    }

    #[test]
    fn output_is_bounded_and_unchanged_text_is_borrowed(text in loggy()) {
        let mut counts = Counts::new();
        let out = pseudonyms().scrub(&text, &mut counts);
        prop_assert!(out.len() <= growth_bound(text.len()));
        if counts.total() == 0 {
            prop_assert_eq!(out.as_ref(), text.as_str());
        }
    }

    #[test]
    fn the_clean_prefix_ends_a_line_and_scrubbing_leaves_it_unchanged(
        lines in prop::collection::vec(loggy(), 1..12)
    ) {
        let s = tags();
        let text = lines.join("\n") + "\n";
        let clean = s.clean_prefix(text.as_bytes());
        prop_assert!(clean == 0 || text.as_bytes()[clean - 1] == b'\n');
        let prefix = &text[..clean];
        for line in prefix.lines() {
            let scrubbed = s.scrub(line, &mut Counts::new());
            prop_assert_eq!(scrubbed.as_ref(), line);
        }
        // It stops at the first line that scrubbing changes.
        if let Some(next) = text[clean..].lines().next() {
            let first_changed = text.lines().position(|l| s.scrub(l, &mut Counts::new()) != l);
            prop_assert!(first_changed.is_none_or(|i| i >= prefix.lines().count()), "{next}");
        }
    }

    #[test]
    fn the_clean_prefix_of_any_text_is_left_unchanged_by_scrubbing(
        lines in prop::collection::vec(prop_oneof![
            loggy().prop_map(String::into_bytes),
            "[a-z ]{0,40}".prop_map(String::into_bytes),
            "[\\x00-\\x7f]{0,40}".prop_map(String::into_bytes),
            "\\PC{0,20}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..24),
        ], 1..16)
    ) {
        let s = tags();
        let mut text = lines.join(&b'\n');
        text.push(b'\n');
        let clean = s.clean_prefix(&text);
        prop_assert!(clean == 0 || text[clean - 1] == b'\n');
        let prefix = std::str::from_utf8(&text[..clean]);
        prop_assert!(prefix.is_ok());
        for line in prefix.unwrap_or("").split_terminator('\n') {
            let scrubbed = s.scrub(line, &mut Counts::new());
            prop_assert_eq!(scrubbed.as_ref(), line);
        }
    }

    #[test]
    fn any_unicode_text_comes_out_as_text(text in "\\PC*") {
        // `String` guarantees UTF-8; what this proves is that no slice lands inside a character.
        let out = tags().scrub(&text, &mut Counts::new());
        prop_assert!(out.len() <= growth_bound(text.len()));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let s = tags();
        let out = s.scrub_bytes(&bytes, &mut Counts::new()).into_owned();
        prop_assert!(out.len() <= growth_bound(3 * bytes.len()));
        prop_assert_eq!(s.scrub(&out, &mut Counts::new()).into_owned(), out);
        let text = String::from_utf8_lossy(&bytes);
        s.scrub_json_line(&text, &mut Counts::new());
    }
}

#[test]
fn the_clean_prefix_stops_before_personal_data_and_invalid_utf8() {
    let s = tags();
    let text = "GET /health 200 1.2 ms\nuser bob@example.com logged in\nok\n";
    assert_eq!(
        s.clean_prefix(text.as_bytes()),
        "GET /health 200 1.2 ms\n".len()
    );
    assert_eq!(s.clean_prefix(b"ok\ncaf\xe9\nok\n"), 3);
    // An unfinished last line is never part of it.
    assert_eq!(s.clean_prefix(b"ok\nno newline yet"), 3);
    // Custom patterns run on every line: no line is known clean without running them.
    let config = ScrubConfig {
        patterns: vec![rampart_scrub::CustomPattern {
            name: "ticket".into(),
            regex: "TCK-[0-9]+".into(),
        }],
        ..ScrubConfig::default()
    };
    let custom = Scrubber::new(&config, None).unwrap();
    assert_eq!(custom.clean_prefix(b"ok\nTCK-12\n"), 0);
}

#[test]
fn megabytes_of_at_signs_finish_unchanged() {
    let text = "@".repeat(4 << 20);
    assert_eq!(tags().scrub(&text, &mut Counts::new()), text);
}

#[test]
fn long_digit_run_is_not_a_card_and_finishes() {
    let text = "7".repeat(2 << 20);
    assert_eq!(tags().scrub(&text, &mut Counts::new()), text);
}

#[test]
fn long_run_of_separated_digits_finishes() {
    let text = "12 ".repeat(500_000);
    tags().scrub(&text, &mut Counts::new());
}

#[test]
fn long_local_part_before_a_domain_is_redacted_in_linear_time() {
    let text = format!("{}@example.com", "a".repeat(1 << 20));
    let out = tags().scrub(&text, &mut Counts::new());
    assert!(!out.contains("example.com"));
}

#[test]
fn repeated_jwt_prefixes_finish() {
    let text = format!("{}.aaaaaaaaaa.bbbbbbbbbb", "eyJ".repeat(300_000));
    tags().scrub(&text, &mut Counts::new());
}

#[test]
fn repeated_near_miss_emails_finish() {
    let text = "a@b.cc@".repeat(200_000);
    tags().scrub(&text, &mut Counts::new());
}

#[test]
fn deeply_nested_json_is_walked_without_recursion() {
    let depth = 200_000;
    let line = format!(
        "{}\"ada@example.com\"{}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let out = tags().scrub_json_line(&line, &mut Counts::new());
    assert!(out.contains("\"[EMAIL]\""));
    assert_eq!(
        out.len(),
        line.len() - "ada@example.com".len() + "[EMAIL]".len()
    );
}

#[test]
fn unterminated_json_falls_back_to_text() {
    let line = format!("{}ada@example.com", "{\"a\":".repeat(100_000));
    let out = tags().scrub_json_line(&line, &mut Counts::new());
    assert!(out.ends_with("[EMAIL]"));
}
