//! Hourly counts of the audit log (`audit_hourly`): records per hour, action, subject and
//! actor, kept current by [`Store::audit_rollup_step`].
//!
//! The evidence (LOG-4, the gateway's ACC-5, the apps' ACC-1 and ACC-4, the backup
//! events) and the apps page count up to thirty days of one action per subject and
//! person. On a busy gateway or front door that is every statement or request of the
//! month, read again at each load: 0.46 s for 1.3 million app requests, and growing with
//! the traffic. With the counts a load reads a few hundred rows of them, plus the records
//! of the window's first, partial hour and those after the mark.
//!
//! The counts hold exactly the records with `seq` in `(start, mark]`, where every record
//! of `from_us` or later lies after `start`. A step reads its records' counts outside any
//! write, then moves the mark and adds the counts in one short transaction, which first
//! checks the mark is still where the step read it: two nodes sharing a PostgreSQL store
//! never count a record twice, and appends wait for a few upserts, not for the read.

use sqlx::Row;

use crate::{Engine, Store, StoreError};

/// One hour in microseconds: the counts' unit of time.
const HOUR_US: i64 = 3_600_000_000;

/// Most records one step reads.
const STEP: i64 = 200_000;

/// How far back the counts begin when the first step starts them.
const START_BACK_US: i64 = 31 * 24 * HOUR_US;

/// Hours of counts kept: the longest window asked for is thirty days.
const KEEP_HOURS: i64 = 40 * 24;

/// Where the counts stand.
#[derive(Debug, Clone, Copy)]
struct State {
    /// The last record counted.
    mark: i64,
    /// Every record of this time or later is after the counts' start.
    from_us: i64,
}

/// Records of one action in a window, per subject and actor, in that order.
pub(crate) type Counts = Vec<(String, String, i64)>;

impl Store {
    /// Counts up to 200,000 records after the mark (starting the counts when there are
    /// none yet). Returns whether newer records remain.
    pub async fn audit_rollup_step(&self) -> Result<bool, StoreError> {
        self.rollup_step(STEP).await
    }

    /// [`Store::audit_rollup_step`] reading at most `step` records.
    async fn rollup_step(&self, step: i64) -> Result<bool, StoreError> {
        let state = match self.rollup_state().await? {
            Some(state) => state,
            None => {
                self.rollup_start().await?;
                self.rollup_state()
                    .await?
                    .ok_or_else(|| StoreError::Task("the audit counts did not start".into()))?
            }
        };
        let head = self.rollup_head().await?;
        if head <= state.mark {
            return Ok(false);
        }
        let end = head.min(state.mark.saturating_add(step));
        let rows = sqlx::query(
            "SELECT time_us / 3600000000 AS hour, action, subject, actor, COUNT(*) AS n FROM audit_log WHERE seq > $1 AND seq <= $2 GROUP BY time_us / 3600000000, action, subject, actor",
        )
        .bind(state.mark)
        .bind(end)
        .fetch_all(self.pool())
        .await?;
        let mut counts = Vec::with_capacity(rows.len());
        for r in &rows {
            counts.push((
                r.try_get::<i64, _>("hour")?,
                r.try_get::<String, _>("action")?,
                r.try_get::<String, _>("subject")?,
                r.try_get::<String, _>("actor")?,
                r.try_get::<i64, _>("n")?,
            ));
        }
        if !self.rollup_apply(state.mark, end, &counts).await? {
            // Another node moved the mark first: the next step starts from there.
            return Ok(true);
        }
        Ok(end < head)
    }

    /// Steps until the counts reach the newest record.
    pub async fn audit_rollup(&self) -> Result<(), StoreError> {
        while self.audit_rollup_step().await? {}
        Ok(())
    }

    /// Moves the mark from `from` to `to` and adds `counts`, in one transaction; `false`
    /// (nothing changed) when the mark is no longer at `from`.
    pub(crate) async fn rollup_apply(
        &self,
        from: i64,
        to: i64,
        counts: &[(i64, String, String, String, i64)],
    ) -> Result<bool, StoreError> {
        let mut w = self.write().await?;
        let moved = sqlx::query("UPDATE audit_rollup SET mark = $1 WHERE id = 1 AND mark = $2")
            .bind(to)
            .bind(from)
            .execute(w.conn()?)
            .await?
            .rows_affected();
        if moved != 1 {
            // Dropped without commit: rolled back.
            return Ok(false);
        }
        for (hour, action, subject, actor, n) in counts {
            sqlx::query(
                "INSERT INTO audit_hourly (action, hour, subject, actor, n) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (action, hour, subject, actor) DO UPDATE SET n = audit_hourly.n + excluded.n",
            )
            .bind(action.as_str())
            .bind(*hour)
            .bind(subject.as_str())
            .bind(actor.as_str())
            .bind(*n)
            .execute(w.conn()?)
            .await?;
        }
        // Older counts of the actions counted here, each a range of the primary key: a
        // scan of the whole table would hold appends up at every step. An action no longer
        // written keeps at most its last 40 days.
        let now_hour = crate::now_us().div_euclid(HOUR_US);
        let actions: std::collections::BTreeSet<&str> = counts
            .iter()
            .map(|(_, action, ..)| action.as_str())
            .collect();
        for action in actions {
            sqlx::query("DELETE FROM audit_hourly WHERE action = $1 AND hour < $2")
                .bind(action)
                .bind(now_hour - KEEP_HOURS)
                .execute(w.conn()?)
                .await?;
        }
        w.commit().await?;
        Ok(true)
    }

    /// Starts the counts 31 days back (on the hour): the mark goes just before the first
    /// record of that time or later, or to the newest record when there is none.
    async fn rollup_start(&self) -> Result<(), StoreError> {
        let from_us = (crate::now_us() - START_BACK_US).div_euclid(HOUR_US) * HOUR_US;
        // The head first: a record appended meanwhile comes after it, so after the mark.
        let head = self.rollup_head().await?;
        let first: Option<i64> =
            sqlx::query_scalar("SELECT MIN(seq) FROM audit_log WHERE time_us >= $1 AND seq <= $2")
                .bind(from_us)
                .bind(head)
                .fetch_one(self.pool())
                .await?;
        let mark = first.map_or(head, |seq| seq - 1);
        let mut w = self.write().await?;
        sqlx::query(
            "INSERT INTO audit_rollup (id, mark, from_us) SELECT 1, $1, $2 WHERE NOT EXISTS (SELECT 1 FROM audit_rollup WHERE id = 1)",
        )
        .bind(mark)
        .bind(from_us)
        .execute(w.conn()?)
        .await?;
        w.commit().await
    }

    async fn rollup_state(&self) -> Result<Option<State>, StoreError> {
        state(self.pool()).await
    }

    async fn rollup_head(&self) -> Result<i64, StoreError> {
        Ok(self.audit_last_seq().await?.unwrap_or(0))
    }

    /// Records of `action` since `since_us` per subject and actor, from the counts, the
    /// first partial hour and the records after the mark, all read in one snapshot.
    /// `None` when the counts do not reach back to `since_us` (not started, started later,
    /// or older than the 40 days they keep): the caller counts the log itself.
    pub(crate) async fn rolled_counts(
        &self,
        action: &str,
        since_us: i64,
    ) -> Result<Option<Counts>, StoreError> {
        let mut tx = self.pool().begin().await?;
        if self.engine() == Engine::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await?;
        }
        let Some(state) = state(&mut *tx).await? else {
            return Ok(None);
        };
        let kept_from = (crate::now_us().div_euclid(HOUR_US) - KEEP_HOURS) * HOUR_US;
        if since_us < state.from_us.max(kept_from) {
            return Ok(None);
        }
        // The first whole hour of the window; the records before it are counted one by one.
        let first_hour =
            since_us.div_euclid(HOUR_US) + i64::from(since_us.rem_euclid(HOUR_US) != 0);
        let rows = sqlx::query(&rolled_sql(self.engine()))
            .bind(action)
            .bind(first_hour)
            .bind(since_us)
            .bind(first_hour.saturating_mul(HOUR_US))
            .bind(state.mark)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>("subject")?,
                    r.try_get::<String, _>("actor")?,
                    r.try_get::<i64, _>("n")?,
                ))
            })
            .collect::<Result<Counts, StoreError>>()
            .map(Some)
    }
}

/// Where the counts stand, read through `conn` (the pool, or a transaction's snapshot).
async fn state<'c, E>(conn: E) -> Result<Option<State>, StoreError>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let row = sqlx::query("SELECT mark, from_us FROM audit_rollup WHERE id = 1")
        .fetch_optional(conn)
        .await?;
    row.map(|r| {
        Ok(State {
            mark: r.try_get("mark")?,
            from_us: r.try_get("from_us")?,
        })
    })
    .transpose()
}

/// The three parts of a window of `$1` records: the counts from hour `$2`, the records
/// from `$3` up to that hour's start `$4`, and the records after the mark `$5` from `$4`.
///
/// The records after the mark are read along the sequence range: on SQLite the unary `+`
/// keeps the planner off `audit_action_time`, which would walk the whole window.
fn rolled_sql(engine: Engine) -> String {
    let plus = match engine {
        Engine::Sqlite => "+",
        Engine::Postgres => "",
    };
    format!(
        "SELECT subject, actor, CAST(SUM(n) AS BIGINT) AS n FROM (\
         SELECT subject, actor, n FROM audit_hourly WHERE action = $1 AND hour >= $2 \
         UNION ALL SELECT subject, actor, COUNT(*) AS n FROM audit_log WHERE action = $1 AND time_us >= $3 AND time_us < $4 GROUP BY subject, actor \
         UNION ALL SELECT subject, actor, COUNT(*) AS n FROM audit_log WHERE seq > $5 AND {plus}action = $1 AND {plus}time_us >= $4 GROUP BY subject, actor\
         ) AS parts GROUP BY subject, actor ORDER BY subject, actor"
    )
}

#[cfg(test)]
#[path = "rollup_tests.rs"]
mod tests;
