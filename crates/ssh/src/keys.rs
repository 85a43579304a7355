//! rampart's SSH keys: the host key clients see, the user CA that signs one certificate per
//! session for the target, and the pinning decision for target host keys.
//!
//! Certificates follow PROTOCOL.certkeys in OpenSSH: type user, one principal (the login),
//! key id `rampart:PERSON:SESSION`, a validity of minutes that starts a minute in the past
//! (clock skew between rampart and the target), and only the `permit-pty` extension: the
//! target refuses agent, X11 and port forwarding on its side as well.

use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};
use russh::keys::ssh_key::{HashAlg, LineEnding};
use russh::keys::{Certificate, PrivateKey, PublicKey};

/// A key could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The system random generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// A stored or given key does not parse.
    #[error("not an OpenSSH key: {0}")]
    Parse(String),
    /// A certificate could not be built or signed.
    #[error("cannot sign a certificate: {0}")]
    Sign(String),
}

/// A fresh ed25519 private key from the system generator.
pub fn generate_ed25519(comment: &str) -> Result<PrivateKey, KeyError> {
    let mut seed = [0u8; 32];
    aws_lc_rs::rand::fill(&mut seed).map_err(|_| KeyError::Random)?;
    let pair = Ed25519Keypair::from_seed(&seed);
    PrivateKey::new(KeypairData::Ed25519(pair), comment).map_err(|e| KeyError::Parse(e.to_string()))
}

/// A private key as OpenSSH PEM text (for sealing at rest).
pub fn private_to_text(key: &PrivateKey) -> Result<String, KeyError> {
    key.to_openssh(LineEnding::LF)
        .map(|s| s.to_string())
        .map_err(|e| KeyError::Parse(e.to_string()))
}

/// Reads an OpenSSH private key.
pub fn private_from_text(text: &str) -> Result<PrivateKey, KeyError> {
    PrivateKey::from_openssh(text).map_err(|e| KeyError::Parse(e.to_string()))
}

/// A public key in the `authorized_keys` form (`ssh-ed25519 AAAA… comment`): the comment
/// is dropped, and options before the key type are refused.
pub fn parse_public(line: &str) -> Result<PublicKey, KeyError> {
    let line = line.trim();
    if line.len() > 16 * 1024 {
        return Err(KeyError::Parse("longer than 16 KiB".into()));
    }
    let mut key = PublicKey::from_openssh(line).map_err(|e| KeyError::Parse(e.to_string()))?;
    key.set_comment("");
    Ok(key)
}

/// `SHA256:…`, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// A public key in one line, without comment.
pub fn public_line(key: &PublicKey) -> String {
    let mut key = key.clone();
    key.set_comment("");
    key.to_openssh().unwrap_or_default()
}

/// What a certificate for one session says.
#[derive(Debug, Clone)]
pub struct CertRequest<'a> {
    /// The Unix user on the target (the only principal).
    pub login: &'a str,
    /// The rampart account.
    pub person: &'a str,
    /// The session id.
    pub session: &'a str,
    /// Now, in Unix seconds.
    pub now: u64,
    /// How long the certificate may be used to log in.
    pub valid_secs: u64,
    /// Whether the grant names forwarding destinations (the certificate then permits port
    /// forwarding; rampart still checks each destination).
    pub forwarding: bool,
}

/// The key id a target's `sshd` logs: `rampart:PERSON:SESSION`.
pub fn key_id(person: &str, session: &str) -> String {
    format!("rampart:{person}:{session}")
}

/// Signs a user certificate for `subject` with the CA key.
pub fn sign_user_cert(
    ca: &PrivateKey,
    subject: &PublicKey,
    req: &CertRequest<'_>,
) -> Result<Certificate, KeyError> {
    let mut nonce = [0u8; 32];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| KeyError::Random)?;
    let mut serial = [0u8; 8];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| KeyError::Random)?;
    let sign = |e: russh::keys::ssh_key::Error| KeyError::Sign(e.to_string());
    let mut b = Builder::new(
        nonce.to_vec(),
        subject.key_data().clone(),
        req.now.saturating_sub(60),
        req.now.saturating_add(req.valid_secs),
    )
    .map_err(sign)?;
    b.serial(u64::from_be_bytes(serial)).map_err(sign)?;
    b.cert_type(CertType::User).map_err(sign)?;
    b.key_id(key_id(req.person, req.session)).map_err(sign)?;
    b.valid_principal(req.login).map_err(sign)?;
    b.extension("permit-pty", "").map_err(sign)?;
    if req.forwarding {
        b.extension("permit-port-forwarding", "").map_err(sign)?;
    }
    b.sign(ca).map_err(sign)
}

/// What to do with the host key a target presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyDecision {
    /// It matches the pinned key.
    Known,
    /// Nothing pinned yet: trust it and pin it (trust on first use).
    PinNew,
    /// Another key is pinned: refuse and raise an audit event.
    Mismatch {
        /// The pinned fingerprint.
        expected: String,
    },
}

/// Decides on a presented host key given the pinned fingerprint, if any.
pub fn host_key_decision(pinned: Option<&str>, presented: &str) -> HostKeyDecision {
    match pinned {
        None => HostKeyDecision::PinNew,
        Some(p) if p == presented => HostKeyDecision::Known,
        Some(p) => HostKeyDecision::Mismatch {
            expected: p.to_owned(),
        },
    }
}

/// Checks a target's host certificate (PROTOCOL.certkeys): a host certificate, signed by
/// one of `cas`, valid at `now`, naming `host` among its principals. russh leaves all of
/// this to the caller.
pub fn check_host_cert(
    cert: &Certificate,
    cas: &[PublicKey],
    host: &str,
    now: u64,
) -> Result<(), &'static str> {
    if cert.cert_type() != CertType::Host {
        return Err("not a host certificate");
    }
    let fps: Vec<_> = cas.iter().map(|k| k.fingerprint(HashAlg::Sha256)).collect();
    cert.validate_at(now, fps.iter())
        .map_err(|_| "not signed by a trusted host CA, or not valid now")?;
    if !cert.valid_principals().iter().any(|p| p == host) {
        return Err("the certificate does not name this host");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_certificate_names_login_person_and_session_and_verifies_under_the_ca() {
        let ca = generate_ed25519("ca").unwrap();
        let session_key = generate_ed25519("session").unwrap();
        let cert = sign_user_cert(
            &ca,
            session_key.public_key(),
            &CertRequest {
                login: "deploy",
                person: "alice",
                session: "s-1",
                now: 1_800_000_000,
                valid_secs: 300,
                forwarding: false,
            },
        )
        .unwrap();
        assert_eq!(cert.key_id(), "rampart:alice:s-1");
        assert_eq!(cert.valid_principals(), ["deploy".to_string()]);
        assert_eq!(cert.cert_type(), CertType::User);
        assert_eq!(cert.valid_after(), 1_800_000_000 - 60);
        assert_eq!(cert.valid_before(), 1_800_000_300);
        assert!(cert.extensions().contains_key("permit-pty"));
        assert!(!cert.extensions().contains_key("permit-port-forwarding"));
        let fp = ca.public_key().fingerprint(HashAlg::Sha256);
        cert.validate_at(1_800_000_100, [&fp]).unwrap();
        assert!(cert.validate_at(1_800_000_301, [&fp]).is_err());
        let other = generate_ed25519("other").unwrap();
        let other_fp = other.public_key().fingerprint(HashAlg::Sha256);
        assert!(cert.validate_at(1_800_000_100, [&other_fp]).is_err());
    }

    #[test]
    fn host_certificates_must_be_host_type_signed_by_a_trusted_ca_and_name_the_host() {
        let ca = generate_ed25519("host ca").unwrap();
        let host = generate_ed25519("host").unwrap();
        let sign = |kind: CertType, principal: &str, signer: &PrivateKey| {
            let mut b = Builder::new(
                vec![0u8; 32],
                host.public_key().key_data().clone(),
                100,
                200,
            )
            .unwrap();
            b.cert_type(kind).unwrap();
            b.valid_principal(principal).unwrap();
            b.sign(signer).unwrap()
        };
        let trusted = [ca.public_key().clone()];
        let good = sign(CertType::Host, "127.0.0.1", &ca);
        assert_eq!(check_host_cert(&good, &trusted, "127.0.0.1", 150), Ok(()));
        assert!(check_host_cert(&good, &trusted, "10.0.0.1", 150).is_err());
        assert!(check_host_cert(&good, &trusted, "127.0.0.1", 250).is_err());
        assert!(
            check_host_cert(
                &sign(CertType::User, "127.0.0.1", &ca),
                &trusted,
                "127.0.0.1",
                150
            )
            .is_err()
        );
        let rogue = generate_ed25519("rogue").unwrap();
        assert!(
            check_host_cert(
                &sign(CertType::Host, "127.0.0.1", &rogue),
                &trusted,
                "127.0.0.1",
                150
            )
            .is_err()
        );
    }

    #[test]
    fn private_keys_round_trip_through_text() {
        let key = generate_ed25519("host").unwrap();
        let back = private_from_text(&private_to_text(&key).unwrap()).unwrap();
        assert_eq!(back.public_key(), key.public_key());
    }

    #[test]
    fn public_keys_parse_from_authorized_keys_lines_and_garbage_is_an_error() {
        let key = generate_ed25519("k").unwrap();
        let line = format!("{} alice@laptop\n", public_line(key.public_key()));
        let parsed = parse_public(&line).unwrap();
        assert_eq!(fingerprint(&parsed), fingerprint(key.public_key()));
        assert!(parse_public("ssh-ed25519 not-base64").is_err());
        assert!(parse_public(&"x".repeat(20_000)).is_err());
    }

    #[test]
    fn host_keys_are_pinned_on_first_use_and_a_change_is_a_mismatch() {
        assert_eq!(host_key_decision(None, "SHA256:a"), HostKeyDecision::PinNew);
        assert_eq!(
            host_key_decision(Some("SHA256:a"), "SHA256:a"),
            HostKeyDecision::Known
        );
        assert_eq!(
            host_key_decision(Some("SHA256:a"), "SHA256:b"),
            HostKeyDecision::Mismatch {
                expected: "SHA256:a".into()
            }
        );
    }
}
