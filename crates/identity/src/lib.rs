//! Personal accounts: people, third parties and owned service accounts; Argon2id passwords, TOTP with replay protection, recovery codes, lockout, sessions.
