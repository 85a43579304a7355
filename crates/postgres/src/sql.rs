//! Statement text without its values (LOG-2, LOG-4): every literal becomes `$n`, comments
//! go, whitespace shrinks to one space, identifiers and keywords stay. Also the statement's
//! class and a fingerprint that is the same for every run of the same statement shape.
//!
//! Works on bytes with its own [`lexer`], so it cannot fail: invalid UTF-8, unterminated
//! strings and unknown syntax still give a text (bytes that are not UTF-8 are replaced), and
//! no literal byte is ever copied to the output.

pub mod lexer;

use lexer::{Kind, Lexer, Token};
use sha2::{Digest, Sha256};

/// Longest normalized text kept, in bytes; longer text is cut at a character boundary and
/// ends with `…`.
pub const MAX_TEXT: usize = 4096;

/// What a statement does, as far as its text says (best effort; `DO` and `CALL` count as
/// writes since they usually are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Reads data (`SELECT`, `SHOW`, `COPY … TO`).
    Read,
    /// Changes data (`INSERT`, `UPDATE`, `DELETE`, `MERGE`, `TRUNCATE`, `COPY … FROM`).
    Write,
    /// Changes the schema (`CREATE`, `ALTER`, `DROP`, `COMMENT`, `SELECT … INTO`).
    Ddl,
    /// Changes who may do what (`GRANT`, `REVOKE`, `ALTER ROLE`, `CREATE USER`, …).
    Privilege,
    /// Transaction control (`BEGIN`, `COMMIT`, `ROLLBACK`, `SAVEPOINT`, …).
    Transaction,
    /// Everything else (`SET`, `LISTEN`, `VACUUM`, `EXECUTE`, …).
    Other,
}

impl Class {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Ddl => "ddl",
            Self::Privilege => "privilege",
            Self::Transaction => "transaction",
            Self::Other => "other",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "read" => Self::Read,
            "write" => Self::Write,
            "ddl" => Self::Ddl,
            "privilege" => Self::Privilege,
            "transaction" => Self::Transaction,
            "other" => Self::Other,
            _ => return None,
        })
    }

    /// Whether statements of this class are database-change events (LOG-4).
    pub fn is_change(self) -> bool {
        matches!(self, Self::Write | Self::Ddl | Self::Privilege)
    }
}

/// One statement, normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The text with every literal replaced by `$n` (at most [`MAX_TEXT`] bytes).
    pub text: String,
    /// 16 hex digits of SHA-256 over the text with placeholders and case folded.
    pub fingerprint: String,
    /// What it does.
    pub class: Class,
}

/// Splits `sql` at top-level semicolons and normalizes each non-empty statement. Empty
/// input gives no statement.
pub fn normalize(sql: &[u8]) -> Vec<Statement> {
    let mut out = Vec::new();
    let mut current: Vec<Token> = Vec::new();
    for token in Lexer::new(sql) {
        if token.kind == Kind::Semicolon {
            if let Some(s) = statement(sql, &current) {
                out.push(s);
            }
            current.clear();
        } else {
            current.push(token);
        }
    }
    if let Some(s) = statement(sql, &current) {
        out.push(s);
    }
    out
}

/// Normalizes `sql` as one statement, as the extended protocol's Parse carries it (a
/// trailing `;` is dropped; several statements stay one text).
pub fn normalize_one(sql: &[u8]) -> Statement {
    let mut tokens: Vec<Token> = Lexer::new(sql).collect();
    while tokens
        .last()
        .is_some_and(|t| matches!(t.kind, Kind::Semicolon | Kind::Space | Kind::Comment))
    {
        tokens.pop();
    }
    statement(sql, &tokens).unwrap_or_else(|| Statement {
        text: String::new(),
        fingerprint: fingerprint(""),
        class: Class::Other,
    })
}

fn statement(sql: &[u8], tokens: &[Token]) -> Option<Statement> {
    let meaningful = |t: &&Token| !matches!(t.kind, Kind::Space | Kind::Comment);
    tokens.iter().find(meaningful)?;
    let highest = tokens
        .iter()
        .filter_map(|t| match t.kind {
            Kind::Param(n) => Some(n),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let mut next = highest;
    let mut text = String::new();
    let mut shape = String::new();
    let mut gap = false;
    for t in tokens {
        let bytes = sql.get(t.start..t.end).unwrap_or_default();
        match t.kind {
            Kind::Space | Kind::Comment => {
                gap = true;
                continue;
            }
            _ => {}
        }
        if gap && !text.is_empty() {
            text.push(' ');
            shape.push(' ');
        }
        gap = false;
        match t.kind {
            Kind::Literal => {
                next = next.saturating_add(1);
                text.push('$');
                text.push_str(&next.to_string());
                shape.push('?');
            }
            Kind::Param(_) => {
                text.push_str(&String::from_utf8_lossy(bytes));
                shape.push('?');
            }
            Kind::Word => {
                let word = String::from_utf8_lossy(bytes);
                text.push_str(&word);
                shape.push_str(&word.to_lowercase());
            }
            _ => {
                let raw = String::from_utf8_lossy(bytes);
                text.push_str(&raw);
                shape.push_str(&raw);
            }
        }
        if text.len() > MAX_TEXT * 2 {
            // Far past what is kept; the rest cannot change the kept part.
            break;
        }
    }
    let class = classify(sql, tokens);
    Some(Statement {
        text: cut(text),
        fingerprint: fingerprint(&shape),
        class,
    })
}

fn cut(mut text: String) -> String {
    if text.len() <= MAX_TEXT {
        return text;
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    text
}

fn fingerprint(shape: &str) -> String {
    let digest = Sha256::digest(shape.as_bytes());
    hex::encode(digest.get(..8).unwrap_or_default())
}

/// The words of a statement, upper-cased, each with its parenthesis depth.
fn words(sql: &[u8], tokens: &[Token]) -> Vec<(String, u32)> {
    let mut depth = 0u32;
    let mut out = Vec::new();
    for t in tokens {
        match t.kind {
            Kind::Open => depth = depth.saturating_add(1),
            Kind::Close => depth = depth.saturating_sub(1),
            Kind::Word => {
                let bytes = sql.get(t.start..t.end).unwrap_or_default();
                out.push((String::from_utf8_lossy(bytes).to_ascii_uppercase(), depth));
            }
            _ => {}
        }
    }
    out
}

fn classify(sql: &[u8], tokens: &[Token]) -> Class {
    let words = words(sql, tokens);
    class_of(&words)
}

fn class_of(words: &[(String, u32)]) -> Class {
    let w = |i: usize| words.get(i).map(|(w, _)| w.as_str()).unwrap_or("");
    let anywhere = |set: &[&str]| words.iter().any(|(w, _)| set.contains(&w.as_str()));
    let top = |word: &str| words.iter().any(|(w, d)| *d == 0 && w == word);
    const DML: &[&str] = &["INSERT", "UPDATE", "DELETE", "MERGE"];
    const ROLES: &[&str] = &["ROLE", "USER", "GROUP", "POLICY"];
    match w(0) {
        "SELECT" if top("INTO") => Class::Ddl,
        "SELECT" | "VALUES" | "TABLE" | "SHOW" | "FETCH" => Class::Read,
        "WITH" if anywhere(DML) => Class::Write,
        "WITH" => Class::Read,
        "EXPLAIN" if anywhere(&["ANALYZE", "ANALYSE"]) && anywhere(DML) => Class::Write,
        "EXPLAIN" => Class::Read,
        "DECLARE" => Class::Read,
        "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "TRUNCATE" | "DO" | "CALL" | "REFRESH" => {
            Class::Write
        }
        "COPY" if top("FROM") => Class::Write,
        "COPY" => Class::Read,
        "GRANT" | "REVOKE" | "REASSIGN" => Class::Privilege,
        "CREATE" | "ALTER" | "DROP" if ROLES.contains(&w(1)) => Class::Privilege,
        "ALTER" if w(1) == "DEFAULT" && w(2) == "PRIVILEGES" => Class::Privilege,
        "ALTER" if w(1) == "LARGE" => Class::Privilege,
        "DROP" if w(1) == "OWNED" => Class::Privilege,
        "ALTER"
            if words
                .windows(2)
                .any(|p| matches!(p, [(a, 0), (b, 0)] if a == "OWNER" && b == "TO")) =>
        {
            Class::Privilege
        }
        "CREATE" | "ALTER" | "DROP" | "COMMENT" | "SECURITY" | "IMPORT" => Class::Ddl,
        "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT" | "RELEASE" => {
            Class::Transaction
        }
        "PREPARE" if w(1) == "TRANSACTION" => Class::Transaction,
        "SET" if w(1) == "TRANSACTION" || (w(1) == "SESSION" && w(2) == "CHARACTERISTICS") => {
            Class::Transaction
        }
        "PREPARE" => match words.iter().position(|(w, d)| *d == 0 && w == "AS") {
            Some(at) => class_of(words.get(at + 1..).unwrap_or_default()),
            None => Class::Other,
        },
        _ => Class::Other,
    }
}

#[cfg(test)]
mod tests;
