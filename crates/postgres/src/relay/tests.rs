use super::*;

#[test]
fn command_tags_split_into_command_and_rows() {
    assert_eq!(split_tag(b"INSERT 0 5"), ("INSERT".into(), Some(5)));
    assert_eq!(split_tag(b"SELECT 12"), ("SELECT".into(), Some(12)));
    assert_eq!(split_tag(b"CREATE TABLE"), ("CREATE TABLE".into(), None));
    assert_eq!(split_tag(b"COPY 3"), ("COPY".into(), Some(3)));
}

/// The split as first written, through owned words.
fn split_by_words(tag: &[u8]) -> (String, Option<u64>) {
    let text = String::from_utf8_lossy(tag);
    let mut words: Vec<&str> = text.split(' ').collect();
    let rows = words.last().and_then(|w| w.parse::<u64>().ok());
    while words.last().is_some_and(|w| w.parse::<u64>().is_ok()) {
        words.pop();
    }
    let command: String = words.join(" ").chars().take(64).collect();
    (command, rows)
}

#[test]
fn borrowed_splits_are_the_split_by_words() {
    let long = format!("{} 7", "É".repeat(70));
    let tags: [&[u8]; 12] = [
        b"INSERT 0 5",
        b"SELECT 12",
        b"CREATE TABLE",
        b"",
        b"5",
        b"1 2 3",
        b"A 1 B 2",
        b"A  1",
        b"FETCH 18446744073709551616",
        b"BAD \xff\xfe 3",
        long.as_bytes(),
        b" 1",
    ];
    for tag in tags {
        let (command, rows) = split_tag(tag);
        assert_eq!((command.into_owned(), rows), split_by_words(tag), "{tag:?}");
    }
}

/// The record of a statement as the relay first made it: an event, then its record.
fn by_event(s: &SessionInfo, statement: &Arc<Tracked>, done: &Done<'_>) -> AuditRecord {
    let class = statement.statement.class;
    let action = if class.is_change() {
        Action::DbChange
    } else {
        Action::DbStatement
    };
    let mut e = rampart_audit::AuditEvent::new(
        rampart_audit::Actor::User(s.account.clone()),
        action,
        s.target.clone(),
    )
    .source(s.source)
    .detail("session", s.id.clone())
    .detail("db_role", s.db_role.clone())
    .detail("database", s.database.clone())
    .detail("class", class.as_str())
    .detail("fingerprint", statement.statement.fingerprint.clone())
    .detail("statement", statement.text.clone())
    .detail("duration_us", "0");
    match done {
        Done::Complete(tag) => {
            let (command, rows) = split_by_words(tag);
            e = e.detail("command", command);
            if let Some(rows) = rows {
                e = e.detail("rows", rows.to_string());
            }
        }
        Done::Suspended => e = e.detail("command", "PORTAL SUSPENDED"),
        Done::Empty => {}
        Done::Error(code) => {
            e = e
                .outcome(Outcome::Failure)
                .detail("sqlstate", sqlstate(code));
        }
    }
    AuditRecord::unsealed(&e)
}

#[test]
fn a_statement_record_is_the_record_of_its_event() {
    let mut s = session();
    s.source = Some("::1".parse().unwrap());
    let statements = [
        Tracked::new(Statement {
            text: "SELECT * FROM t WHERE a = $1 AND b = 'x\"y'".into(),
            fingerprint: "0123456789abcdef".into(),
            class: Class::Read,
        }),
        Tracked::new(Statement {
            text: "GRANT ALL ON t TO \"bob\"".into(),
            fingerprint: "fedcba9876543210".into(),
            class: Class::Privilege,
        }),
    ];
    let dones = [
        Done::Complete(b"INSERT 0 5"),
        Done::Complete(b"CREATE TABLE"),
        Done::Complete(b"\xffBAD 2"),
        Done::Suspended,
        Done::Empty,
        Done::Error(b"42P01"),
        Done::Error(b"x'; --"),
    ];
    for statement in &statements {
        for done in &dones {
            let done = match done {
                Done::Complete(t) => Done::Complete(t),
                Done::Suspended => Done::Suspended,
                Done::Empty => Done::Empty,
                Done::Error(c) => Done::Error(c),
            };
            let expected = by_event(&s, statement, &done);
            let mut got = record(&s, Some(statement.clone()), Instant::now(), done);
            // The one field that depends on the clock.
            let mut details: serde_json::Value = serde_json::from_str(&got.details).unwrap();
            details["duration_us"] = "0".into();
            got.details = serde_json::to_string(&details).unwrap();
            assert_eq!(got, expected);
        }
    }
}

#[test]
fn sqlstate_is_kept_only_when_well_formed() {
    assert_eq!(sqlstate(b"42P01"), "42P01");
    assert_eq!(sqlstate(b"x'; --"), "?????");
}

fn session() -> SessionInfo {
    SessionInfo {
        id: "s".into(),
        account: "alice".into(),
        target: "orders-db".into(),
        db_role: "app_rw".into(),
        database: "orders".into(),
        source: None,
    }
}

/// Feeds client messages through `inspect` and server messages through `respond`;
/// returns (statement, command, rows, sqlstate) of every event, and what is left queued.
fn exchange(client: &[(u8, Vec<u8>)], server: &[(u8, Vec<u8>)]) -> (Vec<[String; 4]>, usize) {
    let mut names = Names::default();
    let mut queue: VecDeque<Expect> = client
        .iter()
        .filter_map(|(tag, body)| inspect(*tag, body, &mut names))
        .collect();
    let mut events = Vec::new();
    for (tag, body) in server {
        respond(*tag, body, &mut queue, &session(), &mut events);
    }
    let got = events
        .iter()
        .map(|e| {
            let details: std::collections::BTreeMap<String, String> =
                serde_json::from_str(&e.details).unwrap();
            let d = |k: &str| details.get(k).cloned().unwrap_or_default();
            [d("statement"), d("command"), d("rows"), d("sqlstate")]
        })
        .collect();
    (got, queue.len())
}

fn c(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn error(code: &str) -> Vec<u8> {
    codec::error_response("ERROR", code, "x")[5..].to_vec()
}

#[test]
fn a_simple_query_with_two_statements_gives_two_records() {
    let (got, left) = exchange(
        &[(b'Q', c("INSERT INTO t VALUES (1); SELECT * FROM t"))],
        &[
            (b'C', c("INSERT 0 1")),
            (b'T', vec![]),
            (b'D', vec![]),
            (b'C', c("SELECT 1")),
            (b'Z', vec![b'I']),
        ],
    );
    assert_eq!(
        got,
        vec![
            [
                "INSERT INTO t VALUES ($1)".into(),
                "INSERT".into(),
                "1".into(),
                String::new()
            ],
            [
                "SELECT * FROM t".into(),
                "SELECT".into(),
                "1".into(),
                String::new()
            ],
        ]
    );
    assert_eq!(left, 0);
}

#[test]
fn an_error_in_a_simple_query_ends_it_and_records_the_sqlstate() {
    let (got, left) = exchange(
        &[(b'Q', c("SELECT 1/0; SELECT 2"))],
        &[(b'E', error("22012")), (b'Z', vec![b'I'])],
    );
    assert_eq!(got.len(), 1);
    assert_eq!(got[0][0], "SELECT $1/$2");
    assert_eq!(got[0][3], "22012");
    assert_eq!(left, 0);
}

#[test]
fn extended_protocol_pipelines_match_responses_and_skip_to_sync_after_an_error() {
    let parse = |name: &str, sql: &str| {
        let mut b = c(name);
        b.extend(c(sql));
        b.extend([0, 0]);
        (b'P', b)
    };
    let bind = |stmt: &str| {
        let mut b = c("");
        b.extend(c(stmt));
        b.extend([0, 0, 0, 0, 0, 0]);
        (b'B', b)
    };
    let execute = (b'E', [c(""), vec![0, 0, 0, 0]].concat());
    let sync = (b'S', vec![]);
    let client = [
        parse("a", "UPDATE t SET v = $1"),
        bind("a"),
        execute.clone(),
        sync.clone(),
        bind("a"),
        execute.clone(),
        sync.clone(),
        parse("b", "SELECT broken"),
        bind("b"),
        execute.clone(),
        sync.clone(),
    ];
    let server = [
        (b'1', vec![]),
        (b'2', vec![]),
        (b'C', c("UPDATE 3")),
        (b'Z', vec![b'I']),
        (b'2', vec![]),
        (b'C', c("UPDATE 0")),
        (b'Z', vec![b'I']),
        // Parse fails: Bind and Execute get no answer, Sync does.
        (b'E', error("42703")),
        (b'Z', vec![b'I']),
    ];
    let (got, left) = exchange(&client, &server);
    assert_eq!(
        got,
        vec![
            [
                "UPDATE t SET v = $1".into(),
                "UPDATE".into(),
                "3".into(),
                String::new()
            ],
            [
                "UPDATE t SET v = $1".into(),
                "UPDATE".into(),
                "0".into(),
                String::new()
            ],
            [
                "SELECT broken".into(),
                String::new(),
                String::new(),
                "42703".into()
            ],
        ]
    );
    assert_eq!(left, 0);
}

#[test]
fn bind_values_are_never_read() {
    let mut names = Names::default();
    let parse = [b"s1\0INSERT INTO t VALUES ($1)\0".as_slice(), &[0, 0]].concat();
    assert!(matches!(
        inspect(b'P', &parse, &mut names),
        Some(Expect::Parse(_))
    ));
    let bind = [
        b"\0s1\0".as_slice(),
        &[0, 0, 0, 1, 0, 0, 0, 6],
        b"secret",
        &[0, 0],
    ]
    .concat();
    assert!(matches!(
        inspect(b'B', &bind, &mut names),
        Some(Expect::Bind)
    ));
    let Some(Expect::Execute { statement, .. }) = inspect(b'E', b"\0\0\0\0\0", &mut names) else {
        panic!("execute expected");
    };
    assert_eq!(statement.statement.text, "INSERT INTO t VALUES ($1)");
    assert_eq!(statement.statement.class, Class::Write);
}
