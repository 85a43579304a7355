//! A byte lexer for PostgreSQL's SQL (PostgreSQL docs, "Lexical Structure", 4.1): just
//! enough to tell literals from identifiers, keywords, parameters, comments and statement
//! ends. It never fails: an unterminated string, comment or dollar quote runs to the end of
//! the input, and any byte it does not know is an operator byte.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Whitespace.
    Space,
    /// `-- …` or `/* … */` (nested).
    Comment,
    /// A value: string (`'…'`, `E'…'`, `B'…'`, `X'…'`, `N'…'`, `U&'…'`), dollar-quoted
    /// string, or number.
    Literal,
    /// A positional parameter `$n`, kept as it is.
    Param(u32),
    /// A keyword or unquoted identifier.
    Word,
    /// A quoted identifier (`"…"`, `U&"…"`), kept as it is.
    QuotedIdent,
    /// `;` outside of strings, comments and quotes.
    Semicolon,
    /// `(`.
    Open,
    /// `)`.
    Close,
    /// Any other byte (operators, commas, casts).
    Op,
}

/// One token: its kind and its byte range in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub kind: Kind,
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// Iterates over the tokens of `input`.
#[derive(Debug, Clone)]
pub struct Lexer<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Self { input, pos: 0 }
    }

    fn at(&self, i: usize) -> Option<u8> {
        self.input.get(i).copied()
    }
}

impl Iterator for Lexer<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        let start = self.pos;
        let first = self.at(start)?;
        let second = self.at(start + 1);
        let (kind, end) = match first {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => {
                let mut i = start + 1;
                while matches!(self.at(i), Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)) {
                    i += 1;
                }
                (Kind::Space, i)
            }
            b'-' if second == Some(b'-') => {
                let mut i = start + 2;
                while !matches!(self.at(i), None | Some(b'\n' | b'\r')) {
                    i += 1;
                }
                (Kind::Comment, i)
            }
            b'/' if second == Some(b'*') => (Kind::Comment, self.block_comment(start)),
            b'\'' => (Kind::Literal, self.quoted(start + 1, b'\'', false)),
            b'"' => (Kind::QuotedIdent, self.quoted(start + 1, b'"', false)),
            b'$' => self.dollar(start),
            b'0'..=b'9' => (Kind::Literal, self.number(start)),
            b'.' if matches!(second, Some(b'0'..=b'9')) => (Kind::Literal, self.number(start)),
            b';' => (Kind::Semicolon, start + 1),
            b'(' => (Kind::Open, start + 1),
            b')' => (Kind::Close, start + 1),
            c if is_word_start(c) => self.word(start),
            _ => (Kind::Op, start + 1),
        };
        self.pos = end.max(start + 1).min(self.input.len());
        Some(Token {
            kind,
            start,
            end: self.pos,
        })
    }
}

impl Lexer<'_> {
    /// `/* … */` with nesting; unterminated runs to the end.
    fn block_comment(&self, start: usize) -> usize {
        let mut depth = 0usize;
        let mut i = start;
        while i < self.input.len() {
            match (self.at(i), self.at(i + 1)) {
                (Some(b'/'), Some(b'*')) => {
                    depth += 1;
                    i += 2;
                }
                (Some(b'*'), Some(b'/')) => {
                    depth = depth.saturating_sub(1);
                    i += 2;
                    if depth == 0 {
                        return i;
                    }
                }
                _ => i += 1,
            }
        }
        self.input.len()
    }

    /// The end of a quoted run that starts at `from` (after the opening quote): a doubled
    /// quote is an escaped one; with `backslash`, `\x` escapes any byte (E'' strings).
    fn quoted(&self, from: usize, quote: u8, backslash: bool) -> usize {
        let mut i = from;
        while let Some(c) = self.at(i) {
            if backslash && c == b'\\' {
                i += 2;
                continue;
            }
            if c == quote {
                if self.at(i + 1) == Some(quote) {
                    i += 2;
                    continue;
                }
                return i + 1;
            }
            i += 1;
        }
        self.input.len()
    }

    /// `$n` (a parameter), `$tag$ … $tag$` (a dollar-quoted string), or a lone `$`.
    fn dollar(&self, start: usize) -> (Kind, usize) {
        let mut i = start + 1;
        if matches!(self.at(i), Some(b'0'..=b'9')) {
            let mut n: u32 = 0;
            while let Some(d @ b'0'..=b'9') = self.at(i) {
                n = n.saturating_mul(10).saturating_add(u32::from(d - b'0'));
                i += 1;
            }
            return (Kind::Param(n), i);
        }
        // A tag is an identifier without `$`; `$$` has an empty one.
        while let Some(c) = self.at(i) {
            if c == b'$' {
                break;
            }
            let ok = if i == start + 1 {
                is_word_start(c)
            } else {
                is_word_start(c) || c.is_ascii_digit()
            };
            if !ok {
                return (Kind::Op, start + 1);
            }
            i += 1;
        }
        if self.at(i) != Some(b'$') {
            return (Kind::Op, start + 1);
        }
        let tag = self.input.get(start..=i).unwrap_or_default();
        let body = i + 1;
        let rest = self.input.get(body..).unwrap_or_default();
        match find(rest, tag) {
            Some(at) => (Kind::Literal, body + at + tag.len()),
            None => (Kind::Literal, self.input.len()),
        }
    }

    /// Decimal, with fraction and exponent; `0x`/`0o`/`0b` integers; `_` separators.
    fn number(&self, start: usize) -> usize {
        let mut i = start;
        if self.at(i) == Some(b'0')
            && matches!(
                self.at(i + 1),
                Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B')
            )
        {
            i += 2;
            while matches!(self.at(i), Some(c) if c.is_ascii_hexdigit() || c == b'_') {
                i += 1;
            }
            return i;
        }
        let digits = |mut i: usize| {
            while matches!(self.at(i), Some(c) if c.is_ascii_digit() || c == b'_') {
                i += 1;
            }
            i
        };
        i = digits(i);
        // `1..5` is not a number followed by a fraction (array slices use `:` but be safe).
        if self.at(i) == Some(b'.') && self.at(i + 1) != Some(b'.') {
            i = digits(i + 1);
        }
        if matches!(self.at(i), Some(b'e' | b'E')) {
            let mut j = i + 1;
            if matches!(self.at(j), Some(b'+' | b'-')) {
                j += 1;
            }
            if matches!(self.at(j), Some(b'0'..=b'9')) {
                i = digits(j);
            }
        }
        i
    }

    /// A word, or a prefixed string (`E'…'`, `B'…'`, `X'…'`, `N'…'`, `U&'…'`, `U&"…"`).
    fn word(&self, start: usize) -> (Kind, usize) {
        let first = self.at(start).unwrap_or_default();
        let next = self.at(start + 1);
        match (first.to_ascii_uppercase(), next) {
            (b'E', Some(b'\'')) => return (Kind::Literal, self.quoted(start + 2, b'\'', true)),
            (b'B' | b'X' | b'N', Some(b'\'')) => {
                return (Kind::Literal, self.quoted(start + 2, b'\'', false));
            }
            (b'U', Some(b'&')) => match self.at(start + 2) {
                Some(b'\'') => return (Kind::Literal, self.quoted(start + 3, b'\'', false)),
                Some(b'"') => return (Kind::QuotedIdent, self.quoted(start + 3, b'"', false)),
                _ => {}
            },
            _ => {}
        }
        let mut i = start + 1;
        while matches!(self.at(i), Some(c) if is_word_start(c) || c.is_ascii_digit() || c == b'$') {
            i += 1;
        }
        (Kind::Word, i)
    }
}

fn is_word_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<(Kind, &str)> {
        Lexer::new(sql.as_bytes())
            .filter(|t| t.kind != Kind::Space)
            .map(|t| (t.kind, &sql[t.start..t.end]))
            .collect()
    }

    #[test]
    fn dollar_quoted_string_is_one_literal() {
        assert_eq!(
            kinds("SELECT $fn$ it's $x$ ; $fn$;"),
            vec![
                (Kind::Word, "SELECT"),
                (Kind::Literal, "$fn$ it's $x$ ; $fn$"),
                (Kind::Semicolon, ";")
            ]
        );
        assert_eq!(kinds("$$a;b$$")[0], (Kind::Literal, "$$a;b$$"));
    }

    #[test]
    fn positional_parameters_are_not_literals() {
        assert_eq!(kinds("$12")[0], (Kind::Param(12), "$12"));
    }

    #[test]
    fn escape_string_honours_backslash_quotes() {
        assert_eq!(
            kinds(r"E'it\'s' x"),
            vec![(Kind::Literal, r"E'it\'s'"), (Kind::Word, "x")]
        );
        // In a standard string a backslash is an ordinary byte.
        assert_eq!(
            kinds(r"'a\' x"),
            vec![(Kind::Literal, r"'a\'"), (Kind::Word, "x")]
        );
    }

    #[test]
    fn nested_block_comment_ends_at_its_own_close() {
        assert_eq!(
            kinds("/* a /* b */ c */ x"),
            vec![(Kind::Comment, "/* a /* b */ c */"), (Kind::Word, "x")]
        );
    }

    #[test]
    fn numbers_of_every_shape_are_literals() {
        for n in ["1", "1.5", ".5", "1e10", "1.5E-3", "0x1F", "1_000"] {
            assert_eq!(kinds(n), vec![(Kind::Literal, n)], "{n}");
        }
    }

    #[test]
    fn unterminated_runs_to_the_end() {
        assert_eq!(kinds("'abc"), vec![(Kind::Literal, "'abc")]);
        assert_eq!(kinds("/* abc"), vec![(Kind::Comment, "/* abc")]);
        assert_eq!(kinds("$q$ abc"), vec![(Kind::Literal, "$q$ abc")]);
    }

    #[test]
    fn identifier_with_dollar_is_one_word() {
        assert_eq!(kinds("a$b"), vec![(Kind::Word, "a$b")]);
    }
}
