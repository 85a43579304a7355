//! Parsers.
