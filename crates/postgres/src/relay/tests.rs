use super::*;

#[test]
fn command_tags_split_into_command_and_rows() {
    assert_eq!(split_tag(b"INSERT 0 5"), ("INSERT".into(), Some(5)));
    assert_eq!(split_tag(b"SELECT 12"), ("SELECT".into(), Some(12)));
    assert_eq!(split_tag(b"CREATE TABLE"), ("CREATE TABLE".into(), None));
    assert_eq!(split_tag(b"COPY 3"), ("COPY".into(), Some(3)));
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
            let d = |k: &str| e.details.get(k).cloned().unwrap_or_default();
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
