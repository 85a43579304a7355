//! TOTP (RFC 6238: HMAC-SHA-1, 30-second steps, 6 digits) with replay protection and
//! recovery codes.

use aws_lc_rs::hmac;
use rampart_core::Secret;
use subtle::ConstantTimeEq;

/// Seconds per step (RFC 6238 §4, the value every authenticator app uses).
pub const STEP_SECONDS: i64 = 30;
/// Steps accepted either side of now, for clock drift.
pub const SKEW_STEPS: i64 = 1;
/// Recovery codes issued at enrollment.
pub const RECOVERY_CODES: usize = 10;

/// A TOTP shared secret (20 random bytes, the RFC 4226 recommendation).
#[derive(Debug, Clone)]
pub struct TotpSecret(Secret<Vec<u8>>);

/// Why a TOTP code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    /// Not six digits.
    #[error("a code is six digits")]
    Malformed,
    /// No step in the window produces it.
    #[error("the code is wrong or expired")]
    Wrong,
    /// It matches a step that was already used: a replay.
    #[error("the code was already used")]
    Replayed,
    /// The random generator failed.
    #[error("the random generator failed")]
    Random,
}

impl TotpSecret {
    /// A fresh secret.
    pub fn generate() -> Result<Self, TotpError> {
        let mut bytes = vec![0u8; 20];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| TotpError::Random)?;
        Ok(Self(Secret::new(bytes)))
    }

    /// A secret from its base32 form (as stored, encrypted, and as shown at enrollment).
    pub fn from_base32(text: &str) -> Option<Self> {
        let clean: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let clean = clean.trim_end_matches('=');
        let bytes = data_encoding::BASE32_NOPAD.decode(clean.as_bytes()).ok()?;
        (bytes.len() >= 10).then(|| Self(Secret::new(bytes)))
    }

    /// The base32 form an authenticator app takes.
    pub fn to_base32(&self) -> Secret<String> {
        Secret::new(data_encoding::BASE32_NOPAD.encode(self.0.expose_secret()))
    }

    /// The `otpauth://` URL that QR codes carry (Key Uri Format).
    pub fn otpauth_url(&self, issuer: &str, account: &str) -> Secret<String> {
        Secret::new(format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits=6&period=30",
            url_escape(issuer),
            url_escape(account),
            self.to_base32().expose_secret(),
            url_escape(issuer)
        ))
    }

    /// The code for the step that contains `unix_seconds`.
    pub fn code_at(&self, unix_seconds: i64) -> String {
        self.code_for_step(unix_seconds.div_euclid(STEP_SECONDS))
    }

    /// Checks `code` at `unix_seconds`. `last_step` is the step of the last accepted code;
    /// a code at or before it is a replay. Returns the step to persist as the new
    /// `last_step`: the caller must store it before the login proceeds.
    pub fn verify(
        &self,
        code: &str,
        unix_seconds: i64,
        last_step: Option<i64>,
    ) -> Result<i64, TotpError> {
        let code = code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TotpError::Malformed);
        }
        let now = unix_seconds.div_euclid(STEP_SECONDS);
        let mut matched = None;
        // Check every step in the window so that timing does not reveal which one matched.
        for step in (now - SKEW_STEPS)..=(now + SKEW_STEPS) {
            let same: bool = self
                .code_for_step(step)
                .as_bytes()
                .ct_eq(code.as_bytes())
                .into();
            if same && matched.is_none() {
                matched = Some(step);
            }
        }
        let step = matched.ok_or(TotpError::Wrong)?;
        if last_step.is_some_and(|last| step <= last) {
            return Err(TotpError::Replayed);
        }
        Ok(step)
    }

    fn code_for_step(&self, step: i64) -> String {
        // RFC 4226 §5.3: HMAC-SHA-1 over the big-endian counter, dynamic truncation.
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, self.0.expose_secret());
        let tag = hmac::sign(&key, &step.to_be_bytes());
        let mac = tag.as_ref();
        let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
        let word = mac
            .get(offset..offset + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(|b| u32::from_be_bytes(b) & 0x7fff_ffff)
            .unwrap_or(0);
        format!("{:06}", word % 1_000_000)
    }
}

/// Ten single-use recovery codes (`xxxx-xxxx-xxxx`, 60 bits each), shown once; only their
/// hashes are stored.
pub fn recovery_codes() -> Result<Vec<Secret<String>>, TotpError> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; 8];
            aws_lc_rs::rand::fill(&mut bytes).map_err(|_| TotpError::Random)?;
            let text = data_encoding::BASE32_NOPAD
                .encode(&bytes)
                .to_ascii_lowercase();
            let text = text.get(..12).unwrap_or(&text).to_owned();
            let (a, rest) = text.split_at(4);
            let (b, c) = rest.split_at(4);
            Ok(Secret::new(format!("{a}-{b}-{c}")))
        })
        .collect()
}

/// Normalizes a typed recovery code before hashing (case, spaces, dashes).
pub fn normalize_recovery_code(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn url_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows (8-digit values, whose last 6 digits are ours).
    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        let secret = TotpSecret(Secret::new(b"12345678901234567890".to_vec()));
        for (t, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(secret.code_at(t), eight[2..], "t={t}");
        }
    }

    #[test]
    fn a_code_is_accepted_once() {
        let secret = TotpSecret::generate().unwrap();
        let now = 1_800_000_000;
        let code = secret.code_at(now);
        let step = secret.verify(&code, now, None).unwrap();
        assert_eq!(
            secret.verify(&code, now, Some(step)),
            Err(TotpError::Replayed)
        );
    }

    #[test]
    fn drift_of_one_step_is_tolerated_but_not_two() {
        let secret = TotpSecret(Secret::new(b"12345678901234567890".to_vec()));
        let now = 1_111_111_109;
        assert!(secret.verify(&secret.code_at(now - 30), now, None).is_ok());
        assert!(secret.verify(&secret.code_at(now + 30), now, None).is_ok());
        assert_eq!(
            secret.verify(&secret.code_at(now - 90), now, None),
            Err(TotpError::Wrong)
        );
        assert_eq!(
            secret.verify(&secret.code_at(now + 90), now, None),
            Err(TotpError::Wrong)
        );
    }

    #[test]
    fn malformed_codes_are_refused() {
        let secret = TotpSecret::generate().unwrap();
        for bad in ["", "12345", "1234567", "12a456"] {
            assert_eq!(secret.verify(bad, 0, None), Err(TotpError::Malformed));
        }
    }

    #[test]
    fn base32_round_trips() {
        let secret = TotpSecret::generate().unwrap();
        let again = TotpSecret::from_base32(secret.to_base32().expose_secret()).unwrap();
        assert_eq!(again.code_at(1_800_000_000), secret.code_at(1_800_000_000));
    }

    #[test]
    fn recovery_codes_are_ten_distinct_and_normalize() {
        let codes = recovery_codes().unwrap();
        let mut texts: Vec<_> = codes.iter().map(|c| c.expose_secret().clone()).collect();
        texts.sort();
        texts.dedup();
        assert_eq!(texts.len(), 10);
        assert_eq!(normalize_recovery_code(" ABCD-efgh-1234 "), "abcdefgh1234");
    }
}
