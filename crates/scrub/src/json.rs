//! JSON lines: values of personal fields are replaced whole, other strings are scanned.
//!
//! A hand-written walker rather than `serde_json::Value`, for three reasons: the line keeps
//! its layout, key order and number formatting (only changed values are rewritten); nesting
//! depth costs a `Vec` entry, not a stack frame, so deeply nested input cannot overflow the
//! stack; and a line that turns out not to be JSON is handed back for a text scan.

use std::borrow::Cow;
use std::ops::Range;

use crate::{Counts, Detector, Scrubber};

/// Scrubs a JSON line, or returns `None` if the line is not a JSON object or array.
pub(crate) fn scrub<'a>(
    scrubber: &Scrubber,
    line: &'a str,
    counts: &mut Counts,
) -> Option<Cow<'a, str>> {
    let mut walk = Walk {
        scrubber,
        line,
        out: None,
        copied: 0,
    };
    walk.run(counts)?;
    Some(match walk.out {
        None => Cow::Borrowed(line),
        Some(mut out) => {
            out.push_str(line.get(walk.copied..)?);
            Cow::Owned(out)
        }
    })
}

/// Where the walker is inside a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// After `{`: a key or `}`.
    ObjectStart,
    /// After `,` in an object: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After `:`; `true` when the key names personal data.
    Value { personal: bool },
    /// After a value in an object: `,` or `}`.
    ObjectNext,
    /// After `[`: a value or `]`.
    ArrayStart,
    /// After `,` in an array: a value.
    ArrayValue,
    /// After a value in an array: `,` or `]`.
    ArrayNext,
}

struct Walk<'s, 'a> {
    scrubber: &'s Scrubber,
    line: &'a str,
    out: Option<String>,
    copied: usize,
}

impl Walk<'_, '_> {
    fn run(&mut self, counts: &mut Counts) -> Option<()> {
        let bytes = self.line.as_bytes();
        let mut stack: Vec<Frame> = Vec::new();
        let mut key = String::new();
        let mut i = skip_ws(bytes, 0);
        if !matches!(bytes.get(i), Some(b'{' | b'[')) {
            return None;
        }
        loop {
            i = skip_ws(bytes, i);
            let b = *bytes.get(i)?;
            let frame = stack.last().copied();
            match frame {
                Some(Frame::ObjectStart | Frame::Key) => {
                    if b == b'}' && frame == Some(Frame::ObjectStart) {
                        stack.pop();
                        i += 1;
                    } else if b == b'"' {
                        let end = string_end(bytes, i)?;
                        key = decode(self.line.get(i..end)?)?.into_owned();
                        self.scan_string(i..end, counts)?;
                        set_top(&mut stack, Frame::Colon);
                        i = end;
                        continue;
                    } else {
                        return None;
                    }
                }
                Some(Frame::Colon) => {
                    if b != b':' {
                        return None;
                    }
                    let personal = self.scrubber.is_personal_field(&key);
                    set_top(&mut stack, Frame::Value { personal });
                    i += 1;
                    continue;
                }
                Some(Frame::ObjectNext | Frame::ArrayNext) => {
                    let (close, next) = if frame == Some(Frame::ObjectNext) {
                        (b'}', Frame::Key)
                    } else {
                        (b']', Frame::ArrayValue)
                    };
                    if b == b',' {
                        set_top(&mut stack, next);
                        i += 1;
                        continue;
                    } else if b == close {
                        stack.pop();
                        i += 1;
                    } else {
                        return None;
                    }
                }
                Some(Frame::ArrayStart) if b == b']' => {
                    stack.pop();
                    i += 1;
                }
                Some(Frame::Value { personal: true }) => {
                    let end = value_end(bytes, i)?;
                    self.redact_field(&key, i..end, counts)?;
                    i = end;
                }
                None | Some(Frame::Value { .. } | Frame::ArrayStart | Frame::ArrayValue) => match b
                {
                    b'{' => {
                        stack.push(Frame::ObjectStart);
                        i += 1;
                        continue;
                    }
                    b'[' => {
                        stack.push(Frame::ArrayStart);
                        i += 1;
                        continue;
                    }
                    b'"' => {
                        let end = string_end(bytes, i)?;
                        self.scan_string(i..end, counts)?;
                        i = end;
                    }
                    b'-' | b'0'..=b'9' => {
                        let end = scalar_end(bytes, i);
                        self.scan_number(i..end, counts)?;
                        i = end;
                    }
                    b't' | b'f' | b'n' => {
                        let end = scalar_end(bytes, i);
                        if !matches!(bytes.get(i..end)?, b"true" | b"false" | b"null") {
                            return None;
                        }
                        i = end;
                    }
                    _ => return None,
                },
            }
            // A value (scalar or container) just ended.
            match stack.last().copied() {
                None => {
                    return (skip_ws(bytes, i) == bytes.len()).then_some(());
                }
                Some(Frame::Value { .. }) => set_top(&mut stack, Frame::ObjectNext),
                Some(_) => set_top(&mut stack, Frame::ArrayNext),
            }
        }
    }

    /// Replaces a personal field's value whole, unless it is empty, null or already replaced.
    fn redact_field(&mut self, key: &str, range: Range<usize>, counts: &mut Counts) -> Option<()> {
        let raw = self.line.get(range.clone())?;
        let value = if raw.starts_with('"') {
            decode(raw)?
        } else {
            Cow::Borrowed(raw)
        };
        if value.is_empty() || raw == "null" || is_token(&value) {
            return Some(());
        }
        let tag = field_tag(key);
        let replacement = self
            .scrubber
            .replacement(&Detector::PersonalField, &tag, &value);
        counts.add(&Detector::PersonalField, 1);
        self.edit(range, &format!("\"{replacement}\""))
    }

    fn scan_string(&mut self, range: Range<usize>, counts: &mut Counts) -> Option<()> {
        let raw = self.line.get(range.clone())?;
        let text = decode(raw)?;
        if let Cow::Owned(scrubbed) = self.scrubber.scrub(&text, counts) {
            let encoded = serde_json::to_string(&scrubbed).ok()?;
            self.edit(range, &encoded)?;
        }
        Some(())
    }

    fn scan_number(&mut self, range: Range<usize>, counts: &mut Counts) -> Option<()> {
        let raw = self.line.get(range.clone())?;
        if let Cow::Owned(scrubbed) = self.scrubber.scrub(raw, counts) {
            let encoded = serde_json::to_string(&scrubbed).ok()?;
            self.edit(range, &encoded)?;
        }
        Some(())
    }

    fn edit(&mut self, range: Range<usize>, replacement: &str) -> Option<()> {
        let out = self
            .out
            .get_or_insert_with(|| String::with_capacity(self.line.len() + 16));
        out.push_str(self.line.get(self.copied..range.start)?);
        out.push_str(replacement);
        self.copied = range.end;
        Some(())
    }
}

/// The tag of a personal field: its name in upper case (`first_name` → `FIRST_NAME`).
fn field_tag(key: &str) -> String {
    let tag: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .skip_while(|c| !c.is_ascii_uppercase())
        .take(32)
        .collect();
    if tag.is_empty() {
        "PERSONAL".to_owned()
    } else {
        tag
    }
}

/// `[TAG]` or `[TAG:0123abcd]`, as written by the scrubber.
fn is_token(value: &str) -> bool {
    let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) else {
        return false;
    };
    let (tag, pseudonym) = inner.split_once(':').unwrap_or((inner, ""));
    let tag_ok = tag.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && tag
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    let pseudonym_ok = pseudonym.is_empty()
        || (pseudonym.len() == 8 && pseudonym.bytes().all(|b| b.is_ascii_hexdigit()));
    tag_ok && pseudonym_ok && !inner.ends_with(':')
}

/// The text of a JSON string token (quotes included), borrowed when it has no escapes.
fn decode(raw: &str) -> Option<Cow<'_, str>> {
    if raw.contains('\\') {
        serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
    } else {
        raw.get(1..raw.len().checked_sub(1)?).map(Cow::Borrowed)
    }
}

fn set_top(stack: &mut [Frame], frame: Frame) {
    if let Some(top) = stack.last_mut() {
        *top = frame;
    }
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while bytes
        .get(i)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        i += 1;
    }
    i
}

/// The end (exclusive) of the string token that starts at `i` with `"`.
fn string_end(bytes: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        match bytes.get(j)? {
            b'"' => return Some(j + 1),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
}

/// The end of a number or literal.
fn scalar_end(bytes: &[u8], mut i: usize) -> usize {
    while bytes
        .get(i)
        .is_some_and(|b| !matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n'))
    {
        i += 1;
    }
    i
}

/// The end of any value starting at `i`, containers included.
fn value_end(bytes: &[u8], i: usize) -> Option<usize> {
    match bytes.get(i)? {
        b'"' => string_end(bytes, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match bytes.get(j)? {
                    b'"' => {
                        j = string_end(bytes, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => Some(scalar_end(bytes, i)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_tags_are_upper_case_identifiers() {
        assert_eq!(field_tag("first_name"), "FIRST_NAME");
        assert_eq!(field_tag("userAgent"), "USERAGENT");
        assert_eq!(field_tag("1st"), "ST");
        assert_eq!(field_tag("42"), "PERSONAL");
    }

    #[test]
    fn tokens_are_recognised_and_look_alikes_are_not() {
        assert!(is_token("[EMAIL]"));
        assert!(is_token("[EMAIL:3f9a1c0d]"));
        assert!(!is_token("[email]"));
        assert!(!is_token("[EMAIL:]"));
        assert!(!is_token("[EMAIL:zz]"));
    }

    #[test]
    fn value_end_skips_nested_containers_and_brackets_in_strings() {
        let text = br#"{"a":[1,"]}"],"b":{}} tail"#;
        assert_eq!(value_end(text, 0), Some(21));
    }
}
