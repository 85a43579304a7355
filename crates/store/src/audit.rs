//! The audit table: append inside write transactions, read in pages.

use rampart_audit::{AuditRecord, Chain, Verifier};
use sqlx::any::AnyRow;
use std::sync::OnceLock;

use sqlx::{AnyConnection, Row};

use crate::{Store, StoreError};

/// Records read per page while verifying.
const VERIFY_PAGE: u32 = 20_000;

/// Pages read at once while verifying (each on its own connection).
const VERIFY_READERS: usize = 2;

/// Filters for reading the audit log, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this actor (`user:alice`, `system`).
    pub actor: Option<String>,
    /// Only actions starting with this (`login`, `user.create`).
    pub action_prefix: Option<String>,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// Only records older than this sequence number (for paging back).
    pub before_seq: Option<u64>,
    /// Only records newer than this time (µs).
    pub since_us: Option<i64>,
    /// At most this many (capped at 1,000).
    pub limit: u32,
}

const COLUMNS: &str =
    "seq, time_us, actor, action, subject, outcome, source, details, prev_hash, hash";

pub(crate) const RECORD_COLUMNS: &str = COLUMNS;

pub(crate) async fn head(conn: &mut AnyConnection) -> Result<Chain, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT 1"
    ))
    .fetch_optional(conn)
    .await?;
    match row {
        None => Ok(Chain::default()),
        Some(row) => Chain::after(&record(&row)?).map_err(|e| StoreError::Corrupt(e.to_string())),
    }
}

/// Rows per INSERT statement: 10 parameters each, far below every engine's limit.
pub(crate) const ROWS_PER_INSERT: usize = 64;

/// The multi-row INSERT for `rows` records (1..=[`ROWS_PER_INSERT`]), built once per
/// engine and size. SQLite gets anonymous `?` parameters: for numbered ones the driver
/// looks each name up in a list, which costs quadratic time in a 640-parameter statement.
pub(crate) fn insert_sql(sqlite: bool, rows: usize) -> Option<&'static str> {
    static SQLITE: OnceLock<Vec<String>> = OnceLock::new();
    static POSTGRES: OnceLock<Vec<String>> = OnceLock::new();
    let build = |numbered: bool| {
        (1..=ROWS_PER_INSERT)
            .map(|n| {
                let mut sql = format!("INSERT INTO audit_log ({COLUMNS}) VALUES ");
                for i in 0..n {
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    sql.push('(');
                    for k in 1..=10 {
                        if k > 1 {
                            sql.push_str(", ");
                        }
                        if numbered {
                            sql.push_str(&format!("${}", i * 10 + k));
                        } else {
                            sql.push('?');
                        }
                    }
                    sql.push(')');
                }
                sql
            })
            .collect::<Vec<_>>()
    };
    let all = if sqlite {
        SQLITE.get_or_init(|| build(false))
    } else {
        POSTGRES.get_or_init(|| build(true))
    };
    all.get(rows.checked_sub(1)?).map(String::as_str)
}

/// Inserts records (at most [`ROWS_PER_INSERT`]) with one multi-row statement.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    rows: &[AuditRecord],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let sqlite = conn.backend_name() == "SQLite";
    let sql = insert_sql(sqlite, rows.len()).ok_or_else(|| {
        StoreError::Task(format!(
            "{} audit records in one statement (at most {ROWS_PER_INSERT})",
            rows.len()
        ))
    })?;
    let mut query = sqlx::query(sql);
    for r in rows {
        query = query
            .bind(seq_i64(r.seq)?)
            .bind(r.time_us)
            .bind(r.actor.as_str())
            .bind(r.action.as_str())
            .bind(r.subject.as_str())
            .bind(r.outcome.as_str())
            .bind(r.source.as_str())
            .bind(r.details.as_str())
            .bind(r.prev_hash.as_str())
            .bind(r.hash.as_str());
    }
    query.execute(conn).await?;
    Ok(())
}

impl Store {
    /// Reads records matching `q`, newest first.
    pub async fn audit_search(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let few = match &q.action_prefix {
            Some(prefix) => self.few_actions(prefix, q.since_us).await?,
            None => None,
        };
        if few.as_ref().is_some_and(Vec::is_empty) {
            // No record's action starts with the prefix.
            return Ok(Vec::new());
        }
        let mut sql = format!("SELECT {COLUMNS} FROM audit_log WHERE 1 = 1");
        let mut n = 0;
        let mut param = |sql: &mut String, clause: &str| {
            n += 1;
            sql.push_str(&clause.replace('?', &format!("${n}")));
        };
        if q.actor.is_some() {
            param(&mut sql, " AND actor = ?");
        }
        if q.action_prefix.is_some() {
            param(&mut sql, " AND action LIKE ? ESCAPE '\\'");
        }
        if let Some(names) = &few {
            sql.push_str(" AND action IN (");
            for i in 0..names.len() {
                param(&mut sql, if i == 0 { "?" } else { ", ?" });
            }
            sql.push(')');
        }
        if q.outcome.is_some() {
            param(&mut sql, " AND outcome = ?");
        }
        if q.before_seq.is_some() {
            param(&mut sql, " AND seq < ?");
        }
        if q.since_us.is_some() {
            param(&mut sql, " AND time_us >= ?");
        }
        sql.push_str(" ORDER BY seq DESC LIMIT ");
        sql.push_str(&q.limit.clamp(1, 1000).to_string());
        let mut query = sqlx::query(&sql);
        if let Some(a) = &q.actor {
            query = query.bind(a.clone());
        }
        if let Some(p) = &q.action_prefix {
            // A literal prefix: LIKE's wildcards in it are escaped (action names hold `_`).
            let escaped = p
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            query = query.bind(format!("{escaped}%"));
        }
        for name in few.into_iter().flatten() {
            query = query.bind(name);
        }
        if let Some(o) = &q.outcome {
            query = query.bind(o.clone());
        }
        if let Some(s) = q.before_seq {
            query = query.bind(seq_i64(s)?);
        }
        if let Some(t) = q.since_us {
            query = query.bind(t);
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter().map(record).collect()
    }

    /// The log's actions that start with `prefix`, when fewer than [`FEW_ACTIONS`] records
    /// of them fall in the window from `since_us` on: the search then reads them through
    /// the index by action (and time) and sorts them, where walking the log back from its
    /// newest record would pass every other record first (a second on a log of 5 million
    /// gateway statements, for the two `login.mfa` records in it; the whole log for a week's
    /// few database changes among months of them). A common action (`db.statement`) is
    /// found at once walking back, and through the index would mean sorting millions:
    /// `None` then. An empty list: no record has such an action.
    ///
    /// The actions are the names themselves, found by stepping through the index by action
    /// (one probe per distinct action) and kept when they start with `prefix`: under
    /// PostgreSQL's collations a range of names is not a prefix.
    pub(crate) async fn few_actions(
        &self,
        prefix: &str,
        since_us: Option<i64>,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar(
            "WITH RECURSIVE a(action) AS (SELECT MIN(action) FROM audit_log \
             UNION ALL SELECT (SELECT MIN(action) FROM audit_log WHERE action > a.action) FROM a WHERE a.action IS NOT NULL) \
             SELECT action FROM a WHERE action IS NOT NULL",
        )
        .fetch_all(self.pool())
        .await?;
        let names: Vec<String> = names
            .into_iter()
            .filter(|a| a.starts_with(prefix))
            .collect();
        if names.is_empty() {
            // `IN ()` is no SQL.
            return Ok(Some(names));
        }
        let list = (1..=names.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let window = match since_us {
            Some(_) => format!(" AND time_us >= ${}", names.len() + 1),
            None => String::new(),
        };
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM audit_log WHERE action IN ({list}){window} LIMIT {FEW_ACTIONS}) AS few"
        );
        let mut count = sqlx::query_scalar(&sql);
        for name in &names {
            count = count.bind(name.as_str());
        }
        if let Some(since) = since_us {
            count = count.bind(since);
        }
        let n: i64 = count.fetch_one(self.pool()).await?;
        Ok((n < FEW_ACTIONS).then_some(names))
    }

    /// Records with `seq > after`, oldest first, at most `limit`.
    pub async fn audit_page(&self, after: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq ASC LIMIT $2"
        ))
        .bind(seq_i64(after)?)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(record).collect()
    }

    /// The records among `seq > after` whose action is one of `actions`, oldest first: at
    /// most `limit` of them, looking at most `span` sequence numbers ahead. Also returns how
    /// far the look went, the next call's `after` (`after` itself when there is nothing
    /// newer). Records of other actions are passed by in the database, never read out.
    ///
    /// Sequence numbers are given in chain order as records commit, so every record up to
    /// the newest one seen at the start of the call is already there to be looked at.
    pub async fn audit_page_of(
        &self,
        after: u64,
        span: u64,
        limit: u32,
        actions: &[&str],
    ) -> Result<(Vec<AuditRecord>, u64), StoreError> {
        let head = self.audit_last_seq().await?;
        let head = head.and_then(|h| u64::try_from(h).ok()).unwrap_or(0);
        let upto = head.min(after.saturating_add(span.max(1)));
        if upto <= after || actions.is_empty() || limit == 0 {
            return Ok((Vec::new(), upto.max(after)));
        }
        // One packed row for the page (as the verifier reads): row by row, sqlx copied every
        // value and handed each row across threads, which cost more than the query.
        let sql = page_of_sql(self.engine(), actions.len());
        let mut query = sqlx::query(&sql)
            .bind(seq_i64(after)?)
            .bind(seq_i64(upto)?)
            .bind(PACKED_FORMAT.as_str())
            .bind(i64::from(limit));
        for action in actions {
            query = query.bind(*action);
        }
        let packed: Option<String> = query.fetch_one(self.pool()).await?.try_get("packed")?;
        let records = packed.as_deref().map_or(Ok(Vec::new()), |text| {
            text.split('\u{1e}')
                .map(|line| {
                    view(line).map(owned).ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "an audit record after {after} does not read back as ten fields"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        let reached = match records.last() {
            Some(last) if records.len() >= limit as usize => last.seq,
            _ => upto,
        };
        Ok((records, reached))
    }

    /// Feeds the whole chain through `verifier` in pages, calling `progress` with the
    /// number checked so far. Stops at the first break.
    ///
    /// Reading is most of the cost (SQLite formats every field), so pages are cut by
    /// sequence range and [`VERIFY_READERS`] of them are read at once on their own pool
    /// connections, while the page before is hashed on a blocking thread: all cores work.
    /// The end is the newest sequence number when verification starts; a missing range
    /// in between is an empty page, and the next record's number then breaks the chain.
    pub async fn audit_verify(
        &self,
        verifier: &mut Verifier,
        mut progress: impl FnMut(u64),
    ) -> Result<Result<(), rampart_audit::ChainBreak>, StoreError> {
        let last = self.audit_last_seq().await?;
        let Some(last) = last.and_then(|l| u64::try_from(l).ok()) else {
            return Ok(Ok(()));
        };
        let mut ranges = (0..last)
            .step_by(VERIFY_PAGE as usize)
            .map(move |lo| (lo, lo.saturating_add(u64::from(VERIFY_PAGE)).min(last)));
        let mut reads = std::collections::VecDeque::new();
        loop {
            while reads.len() < VERIFY_READERS {
                let Some((lo, hi)) = ranges.next() else { break };
                let (pool, engine) = (self.pool().clone(), self.engine());
                reads.push_back((
                    (lo, hi),
                    tokio::spawn(async move { packed_range(&pool, engine, lo, hi, false).await }),
                ));
            }
            let Some(((lo, hi), read)) = reads.pop_front() else {
                return Ok(Ok(()));
            };
            let page = read.await.map_err(|e| StoreError::Task(e.to_string()))??;
            let Some(text) = page else {
                // Nothing in this range: the next record (or `finish`) reports the gap.
                continue;
            };
            let before = verifier.clone();
            let (v, mut result) = check_page(std::mem::take(verifier), text).await?;
            *verifier = v;
            if result.is_err() {
                // The fast read does not promise order; before reporting a break, read
                // the page again in guaranteed order and check it from the same point.
                let ordered = packed_range(self.pool(), self.engine(), lo, hi, true).await?;
                let (v, again) = check_page(before, ordered.unwrap_or_default()).await?;
                *verifier = v;
                result = again;
            }
            if let Err(e) = result {
                return Ok(Err(e));
            }
            progress(hi);
        }
    }

    /// The newest record's sequence number (none in an empty log), without the record.
    pub(crate) async fn audit_last_seq(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT MAX(seq) FROM audit_log")
            .fetch_one(self.pool())
            .await?)
    }

    /// The number of records and the newest one.
    pub async fn audit_head(&self) -> Result<Option<AuditRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT 1"
        ))
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(record).transpose()
    }
}

impl Store {
    /// Like [`Store::audit_page`], but the database joins the page into one text value
    /// (fields split by U+001F, records by U+001E) that is parsed here: reading row by row
    /// through the driver costs ten times more than hashing. Neither separator can occur
    /// in a stored field (details are JSON, which escapes control characters; the other
    /// fields are names, addresses and hex); a field that holds one anyway makes its
    /// record fail verification, never pass it.
    pub async fn audit_page_packed(
        &self,
        after: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let Some(packed) = self.packed_page(after, limit).await? else {
            return Ok(Vec::new());
        };
        packed
            .split('\u{1e}')
            .map(|line| {
                view(line).map(owned).ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "an audit record does not split into its ten fields: {line:.80}"
                    ))
                })
            })
            .collect()
    }

    /// One page joined by the database (see [`Store::audit_page_packed`]); none past the end.
    async fn packed_page(&self, after: u64, limit: u32) -> Result<Option<String>, StoreError> {
        let sql = packed_sql(self.engine(), "seq > $1 ORDER BY seq LIMIT $2");
        let row = sqlx::query(&sql)
            .bind(seq_i64(after)?)
            .bind(i64::from(limit))
            .bind(PACKED_FORMAT.as_str())
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("packed")?)
    }

    /// Records of `action` since `since_us`, counted per actor, most active first (at most
    /// 100): [`Store::audit_counts`] summed over subjects.
    pub async fn audit_counts_by_actor(
        &self,
        action: &str,
        since_us: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut by_actor = std::collections::BTreeMap::<String, i64>::new();
        for (_, actor, n) in self.audit_counts(action, since_us).await? {
            *by_actor.entry(actor).or_default() += n;
        }
        let mut by_actor: Vec<(String, i64)> = by_actor.into_iter().collect();
        by_actor.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        by_actor.truncate(100);
        Ok(by_actor)
    }

    /// How many records of `action` since `since_us` have a detail `key` equal to `value`.
    pub async fn audit_count_detail(
        &self,
        action: &str,
        since_us: i64,
        key: &str,
        value: &str,
    ) -> Result<i64, StoreError> {
        // Details are JSON with sorted keys written by serde_json: the pair appears verbatim.
        let needle = format!(
            "%{}%",
            serde_json::json!({ key: value })
                .to_string()
                .trim_start_matches('{')
                .trim_end_matches('}')
        );
        let row = sqlx::query("SELECT COUNT(*) AS n FROM audit_log WHERE action = $1 AND time_us >= $2 AND details LIKE $3")
            .bind(action)
            .bind(since_us)
            .bind(needle)
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("n")?)
    }
}

/// The `format()` pattern of one packed line: ten fields split by U+001F.
static PACKED_FORMAT: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| ["%s"; 10].join("\u{1f}"));

/// Fewest records of an action prefix for which [`Store::audit_search`] walks the log
/// instead of the index by action.
pub(crate) const FEW_ACTIONS: i64 = 50_000;

/// The query of [`Store::audit_page_of`]: records with `after < seq <= upto` (`$1`, `$2`)
/// whose action is one of `actions` (`$5`…), in order, at most `$4`, packed with the
/// format `$3` into one row.
///
/// The sequence range leads. On SQLite the unary `+` keeps the planner off
/// `audit_action_time`: through that index it walked every record of each action the log
/// has ever held, then sorted them, so a page of 5,000 gateway statements took 177 ms on a
/// log of 1.3 million records (8 ms along the range), and longer as the log grew.
pub(crate) fn page_of_sql(engine: crate::Engine, actions: usize) -> String {
    let list = (0..actions)
        .map(|i| format!("${}", i + 5))
        .collect::<Vec<_>>()
        .join(", ");
    let action = match engine {
        crate::Engine::Sqlite => "+action",
        crate::Engine::Postgres => "action",
    };
    packed_sql(
        engine,
        &format!("seq > $1 AND seq <= $2 AND {action} IN ({list}) ORDER BY seq LIMIT $4"),
    )
}

/// [`packed_sql`] for SQLite without the sort: lines come in table order.
const PACKED_UNORDERED_SQLITE: &str = "SELECT group_concat(format($3, seq, time_us, actor, action, subject, outcome, source, details, prev_hash, hash), char(30)) AS packed FROM audit_log WHERE {filter}";

/// The query that packs the rows selected by `filter` (`$1`, `$2`; the format is `$3`).
fn packed_sql(engine: crate::Engine, filter: &str) -> String {
    // One format() call builds each line in a single pass (SQLite and PostgreSQL both
    // have it); `||` would copy the growing line once per field.
    let line = "format($3, seq, time_us, actor, action, subject, outcome, source, details, prev_hash, hash)";
    match engine {
        crate::Engine::Sqlite => format!(
            "SELECT group_concat(line, char(30) ORDER BY seq) AS packed FROM (SELECT seq, {line} AS line FROM audit_log WHERE {filter}) AS page"
        ),
        crate::Engine::Postgres => format!(
            "SELECT string_agg(line, chr(30) ORDER BY seq) AS packed FROM (SELECT seq, {line} AS line FROM audit_log WHERE {filter}) AS page"
        ),
    }
}

/// Hashes one packed page through `v` on a blocking thread.
async fn check_page(
    mut v: Verifier,
    text: String,
) -> Result<(Verifier, Result<(), rampart_audit::ChainBreak>), StoreError> {
    tokio::task::spawn_blocking(move || {
        let result = text.split('\u{1e}').try_for_each(|line| match view(line) {
            Some(record) => v.push_view(&record),
            None => Err(rampart_audit::ChainBreak {
                seq: v.head().seq + 1,
                kind: rampart_audit::BreakKind::Malformed,
            }),
        });
        (v, result)
    })
    .await
    .map_err(|e| StoreError::Task(e.to_string()))
}

/// The records with `lo < seq <= hi`, packed; none when the range is empty. Unless
/// `ordered`, SQLite is not asked to sort the lines: it reads the table in `seq` order
/// (its rowid), and sorting would cost almost as much as the read itself.
async fn packed_range(
    pool: &sqlx::AnyPool,
    engine: crate::Engine,
    lo: u64,
    hi: u64,
    ordered: bool,
) -> Result<Option<String>, StoreError> {
    let sql = match (engine, ordered) {
        (crate::Engine::Sqlite, false) => {
            PACKED_UNORDERED_SQLITE.replace("{filter}", "seq > $1 AND seq <= $2")
        }
        _ => packed_sql(engine, "seq > $1 AND seq <= $2"),
    };
    let row = sqlx::query(&sql)
        .bind(seq_i64(lo)?)
        .bind(seq_i64(hi)?)
        .bind(PACKED_FORMAT.as_str())
        .fetch_one(pool)
        .await?;
    Ok(row.try_get("packed")?)
}

/// A packed record as a borrowed view; `None` when it does not split into ten fields.
fn view(line: &str) -> Option<rampart_audit::RecordView<'_>> {
    let mut f = line.split('\u{1f}');
    let record = rampart_audit::RecordView {
        seq: f.next()?.parse().ok()?,
        time_us: f.next()?.parse().ok()?,
        actor: f.next()?,
        action: f.next()?,
        subject: f.next()?,
        outcome: f.next()?,
        source: f.next()?,
        details: f.next()?,
        prev_hash: f.next()?,
        hash: f.next()?,
    };
    f.next().is_none().then_some(record)
}

fn owned(v: rampart_audit::RecordView<'_>) -> AuditRecord {
    AuditRecord {
        seq: v.seq,
        time_us: v.time_us,
        actor: v.actor.to_owned(),
        action: v.action.to_owned(),
        subject: v.subject.to_owned(),
        outcome: v.outcome.to_owned(),
        source: v.source.to_owned(),
        details: v.details.to_owned(),
        prev_hash: v.prev_hash.to_owned(),
        hash: v.hash.to_owned(),
    }
}

pub(crate) fn seq_i64(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("sequence {seq} out of range")))
}

pub(crate) fn record(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    let seq: i64 = row.try_get("seq")?;
    Ok(AuditRecord {
        seq: u64::try_from(seq)
            .map_err(|_| StoreError::Corrupt(format!("negative sequence {seq}")))?,
        time_us: row.try_get("time_us")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        subject: row.try_get("subject")?,
        outcome: row.try_get("outcome")?,
        source: row.try_get("source")?,
        details: row.try_get("details")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}
