//! Persistence for every room on SQLite or PostgreSQL through sqlx, with migrations per engine.
