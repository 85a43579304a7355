use super::*;

fn one(sql: &str) -> Statement {
    let mut all = normalize(sql.as_bytes());
    assert_eq!(all.len(), 1, "{sql}: {all:?}");
    all.remove(0)
}

#[test]
fn every_kind_of_literal_becomes_a_numbered_placeholder() {
    let cases = [
        (
            "SELECT * FROM t WHERE a = 'x'",
            "SELECT * FROM t WHERE a = $1",
        ),
        ("SELECT 1, 2.5, -3e4, 0xFF", "SELECT $1, $2, -$3, $4"),
        (r"SELECT E'it\'s', 'o''k'", "SELECT $1, $2"),
        ("SELECT $body$ secret $body$", "SELECT $1"),
        ("SELECT $$a;b$$ || 'c'", "SELECT $1 || $2"),
        (
            "SELECT B'1010', X'FF', N'nat', U&'d\\0061t'",
            "SELECT $1, $2, $3, $4",
        ),
        ("SELECT DATE '2024-01-01'::date", "SELECT DATE $1::date"),
    ];
    for (sql, want) in cases {
        assert_eq!(one(sql).text, want, "{sql}");
    }
}

#[test]
fn existing_parameters_are_kept_and_literals_numbered_after_them() {
    assert_eq!(
        one("UPDATE t SET a = $2 WHERE b = 7 AND c = $1").text,
        "UPDATE t SET a = $2 WHERE b = $3 AND c = $1"
    );
}

#[test]
fn comments_go_and_nested_comments_do_not_leak() {
    assert_eq!(
        one("SELECT /* a /* 'secret' */ still comment */ x -- tail 'v'\nFROM t").text,
        "SELECT x FROM t"
    );
}

#[test]
fn identifiers_and_quoted_identifiers_are_kept() {
    assert_eq!(
        one(r#"SELECT "Weird ""Name""", col FROM "Schema".tbl"#).text,
        r#"SELECT "Weird ""Name""", col FROM "Schema".tbl"#
    );
}

#[test]
fn a_simple_query_splits_at_top_level_semicolons_only() {
    let all = normalize(b"INSERT INTO t VALUES ('a;b'); SELECT $$;$$;;");
    let texts: Vec<&str> = all.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(texts, ["INSERT INTO t VALUES ($1)", "SELECT $1"]);
}

#[test]
fn same_shape_gives_same_fingerprint() {
    let a = one("select * from t where id = 1");
    let b = one("SELECT *   FROM t WHERE id = 'zz'");
    let c = one("SELECT * FROM u WHERE id = 1");
    assert_eq!(a.fingerprint, b.fingerprint);
    assert_ne!(a.fingerprint, c.fingerprint);
    assert_eq!(a.fingerprint.len(), 16);
}

#[test]
fn classes_follow_the_leading_keywords() {
    use Class::*;
    let cases = [
        ("SELECT 1", Read),
        ("with x as (select 1) select * from x", Read),
        (
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            Write,
        ),
        ("INSERT INTO t VALUES (1)", Write),
        ("update t set a = 1", Write),
        ("DELETE FROM t", Write),
        ("TRUNCATE t", Write),
        ("COPY t FROM STDIN", Write),
        ("COPY (SELECT * FROM t) TO STDOUT", Read),
        ("COPY t TO STDOUT", Read),
        ("CREATE TABLE t (a int)", Ddl),
        ("ALTER TABLE t ADD COLUMN b int", Ddl),
        ("DROP TABLE t", Ddl),
        ("SELECT * INTO newt FROM t", Ddl),
        ("GRANT SELECT ON t TO bob", Privilege),
        ("REVOKE ALL ON t FROM bob", Privilege),
        ("ALTER ROLE bob PASSWORD 'x'", Privilege),
        ("CREATE USER eve", Privilege),
        ("ALTER TABLE t OWNER TO bob", Privilege),
        (
            "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO bob",
            Privilege,
        ),
        ("BEGIN", Transaction),
        ("commit", Transaction),
        ("ROLLBACK TO SAVEPOINT s", Transaction),
        ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", Transaction),
        ("SET search_path = app", Other),
        ("LISTEN ch", Other),
        ("EXPLAIN SELECT 1", Read),
        ("EXPLAIN ANALYZE DELETE FROM t", Write),
        ("PREPARE p AS INSERT INTO t VALUES ($1)", Write),
    ];
    for (sql, want) in cases {
        assert_eq!(one(sql).class, want, "{sql}");
    }
}

#[test]
fn a_password_in_alter_role_is_a_literal() {
    let s = one("ALTER ROLE bob WITH PASSWORD 'hunter2-secret'");
    assert!(!s.text.contains("hunter2"), "{}", s.text);
}

#[test]
fn invalid_utf8_and_garbage_never_fail() {
    let all = normalize(b"SELECT \xff\xfe FROM t WHERE a = '\xff'");
    assert_eq!(all.len(), 1);
    assert!(all[0].text.starts_with("SELECT "));
    assert!(all[0].text.ends_with("= $1"));
    assert!(normalize(b"").is_empty());
    assert!(normalize(b" ; -- only a comment").is_empty());
}

#[test]
fn long_text_is_cut_with_a_marker() {
    let sql = format!("SELECT {}", "col, ".repeat(5000));
    let s = one(&sql);
    assert!(s.text.len() <= MAX_TEXT + '…'.len_utf8());
    assert!(s.text.ends_with('…'));
}

proptest::proptest! {
    #[test]
    fn no_quoted_value_survives(value in "[a-zA-Z0-9 ]{8,20}") {
        let sql = format!("INSERT INTO t VALUES ('{value}', E'{value}', $x${value}$x$)");
        let s = one(&sql);
        proptest::prop_assert!(!s.text.contains(value.trim()) || value.trim().is_empty() || "INSERT INTO t VALUES".contains(value.trim()));
    }

    #[test]
    fn any_bytes_normalize_without_panicking(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        for s in normalize(&bytes) {
            proptest::prop_assert!(s.text.len() <= MAX_TEXT + 3);
        }
        let _ = normalize_one(&bytes);
    }
}

#[test]
fn a_parsed_statement_loses_its_trailing_semicolon() {
    assert_eq!(
        normalize_one(b"INSERT INTO t VALUES (:x, 1); -- end").text,
        "INSERT INTO t VALUES (:x, $1)"
    );
}
