//! Evidence for the controls this room can prove: ACC-1, ACC-2, ACC-3 and ACC-7 (from
//! [`crate::reviews`]), ACC-6, LOG-3, EXT-1 and
//! ENC-3 (SSH sessions through the bastion) from the store, ENC-2 from a live probe ([`crate::probe`]), LOG-1, LOG-2 and LOG-5 from
//! the log store ([`logs`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rampart_audit::{Checkpoint, Verifier};
use rampart_core::ControlId;
use rampart_identity::AccountKind;
use rampart_identity::policy::{MfaPolicy, PolicyConfig};
use rampart_report::{Finding, Report};
use rampart_store::Store;

/// Thirty days in microseconds: the window the page's evidence looks back over.
const WINDOW_US: i64 = 30 * 24 * 3600 * 1_000_000;

/// Gathers every finding this room knows about, plus `extra` findings gathered elsewhere
/// (the live ENC-2 probe, the network check). A store failure turns the affected controls
/// into "not checked".
///
/// LOG-3 states `chain`'s verification when one is given (the dashboard), else verifies the
/// chain now.
pub async fn collect(
    store: &Store,
    policy: &PolicyConfig,
    extra: Vec<Finding>,
    chain: Option<&Arc<ChainCheck>>,
) -> Report {
    let mut findings = extra;
    let verified = match chain {
        Some(chain) => chain.get().await,
        None => Some(Checked::now(verify_chain(store).await)),
    };
    let results = [
        acc1(store).await.map_err(|e| (ControlId::Acc1, e)),
        acc2(store, policy).await.map_err(|e| (ControlId::Acc2, e)),
        acc6(store).await.map_err(|e| (ControlId::Acc6, e)),
        log3(store, verified.as_ref())
            .await
            .map_err(|e| (ControlId::Log3, e)),
        ext1(store, policy).await.map_err(|e| (ControlId::Ext1, e)),
        enc3(store).await.map_err(|e| (ControlId::Enc3, e)),
        log4(store).await.map_err(|e| (ControlId::Log4, e)),
        crate::reviews::acc3(store)
            .await
            .map_err(|e| (ControlId::Acc3, e)),
        crate::reviews::acc7(store, policy)
            .await
            .map_err(|e| (ControlId::Acc7, e)),
    ];
    for result in results {
        findings.push(result.unwrap_or_else(|(control, e)| {
            Finding::not_checked(control, format!("evidence could not be read: {e}"))
        }));
    }
    // ACC-5 is the network check's; the SSH side adds what the bastion saw.
    if let Some(acc5) = findings.iter_mut().find(|f| f.control == ControlId::Acc5)
        && let Ok(sessions) = store
            .ssh_sessions(
                jiff::Timestamp::now().as_microsecond() - WINDOW_US,
                false,
                100_000,
            )
            .await
    {
        acc5.evidence.push(format!(
            "SSH: {} sessions in the last 30 days, each through the bastion with a per-session certificate from rampart's CA",
            sessions.len()
        ));
    }
    match acc5_gateway(store).await {
        Ok(lines) => {
            if let Some(f) = findings.iter_mut().find(|f| f.control == ControlId::Acc5) {
                f.evidence.extend(lines);
            } else {
                let mut f = Finding::not_checked(
                    ControlId::Acc5,
                    "the network check is not configured, so other paths to the servers are not ruled out",
                );
                f.evidence = lines;
                findings.push(f);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the PostgreSQL gateway's ACC-5 evidence"),
    }
    // Apps behind the front door add to ACC-1 (who used each) and ACC-4 (internal upstreams).
    if let Err(e) = crate::apps::evidence(store, &mut findings).await {
        tracing::warn!(error = %e, "cannot read the apps' ACC-1/ACC-4 evidence");
    }
    Report::assemble(jiff::Timestamp::now(), findings)
}

/// LOG-4: database changes (writes, DDL, privilege statements) seen by the PostgreSQL
/// gateway in the last 30 days, per database and per person. Passes when there are
/// PostgreSQL targets (every statement through the gateway is audited before it is
/// acknowledged); not checked when there is none.
async fn log4(store: &Store) -> Result<Finding, rampart_store::StoreError> {
    let targets: Vec<String> = store
        .targets()
        .await?
        .into_iter()
        .filter(|t| t.kind == rampart_access::TargetKind::Postgres)
        .map(|t| t.name.to_string())
        .collect();
    if targets.is_empty() {
        return Ok(Finding::not_checked(
            ControlId::Log4,
            "no PostgreSQL target is registered: no database is monitored through the gateway yet",
        ));
    }
    let since = jiff::Timestamp::now().as_microsecond() - WINDOW_US;
    let changes = store.audit_counts("db.change", since).await?;
    let statements = store.audit_counts("db.statement", since).await?;
    let total = |rows: &[(String, String, i64)]| rows.iter().map(|r| r.2).sum::<i64>();
    let mut evidence = vec![
        format!(
            "{} PostgreSQL target(s) behind the gateway: {}",
            targets.len(),
            targets.join(", ")
        ),
        format!(
            "last 30 days: {} change events, {} other statements, each audited with normalized text (no values) before it was acknowledged",
            total(&changes),
            total(&statements)
        ),
    ];
    let mut per_db: std::collections::BTreeMap<&str, i64> = Default::default();
    for (db, _, n) in &changes {
        *per_db.entry(db.as_str()).or_default() += n;
    }
    for (db, n) in &per_db {
        let people: Vec<String> = changes
            .iter()
            .filter(|(d, _, _)| d == db)
            .map(|(_, who, n)| format!("{} {n}", who.trim_start_matches("user:")))
            .collect();
        evidence.push(format!("{db}: {n} changes ({})", people.join(", ")));
    }
    Ok(Finding::new(
        ControlId::Log4,
        true,
        "Every write, DDL and privilege statement through the PostgreSQL gateway is a change event, recorded without its values.",
        evidence,
    ))
}

/// The PostgreSQL side of ACC-5: sessions through the gateway, and who used it.
async fn acc5_gateway(store: &Store) -> Result<Vec<String>, rampart_store::StoreError> {
    let since = jiff::Timestamp::now().as_microsecond() - WINDOW_US;
    let sessions = store.audit_counts("db.session.start", since).await?;
    let refused = store.audit_counts("db.refused", since).await?;
    let targets = store
        .targets()
        .await?
        .into_iter()
        .filter(|t| t.kind == rampart_access::TargetKind::Postgres)
        .count();
    Ok(vec![format!(
        "PostgreSQL gateway: {targets} database target(s); {} sessions and {} refused connections in the last 30 days (TLS and a short-lived token required; upstream credentials held only by rampart)",
        sessions.iter().map(|r| r.2).sum::<i64>(),
        refused.iter().map(|r| r.2).sum::<i64>()
    )])
}

/// The last end-to-end verification of the audit chain, shared by the pages that show it
/// (the dashboard's LOG-3, `/audit`). A walk of the whole chain grows with the log (about
/// 5 s for 5 million records here), and `/audit` repeated it for every page of its
/// listing. Verifications run one at a time, in the background:
/// - one that found the chain whole serves the loads of the next [`ChainCheck::FRESH`];
///   after that, loads still show it, with its time, while a new one runs;
/// - a break, or an error reading the store, is never taken as current: each load starts a
///   new verification (unless one runs) and waits up to [`ChainCheck::WAIT`] for it,
///   showing the break meanwhile;
/// - the first load waits up to [`ChainCheck::WAIT`] for the first verification, then
///   says it is running.
///
/// `rampart report` and `rampart audit verify` always verify afresh.
#[derive(Debug)]
pub struct ChainCheck {
    store: Arc<Store>,
    last: std::sync::Mutex<Option<Checked>>,
    /// A verification runs in the background.
    running: AtomicBool,
    /// Verifications ended so far.
    ended: tokio::sync::watch::Sender<u64>,
}

/// One verification: when it ended and what it found.
#[derive(Debug, Clone)]
pub struct Checked {
    /// When the verification ended.
    pub at: jiff::Timestamp,
    ended: std::time::Instant,
    /// The number of records, or a sentence naming the break.
    pub result: Result<u64, String>,
}

impl ChainCheck {
    /// How long a verification that found the chain whole is the one shown without another
    /// starting.
    pub const FRESH: std::time::Duration = std::time::Duration::from_secs(600);

    /// Longest a load waits for a verification to end when it has no whole one to show.
    pub const WAIT: std::time::Duration = std::time::Duration::from_secs(5);

    /// Nothing verified yet.
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            last: std::sync::Mutex::new(None),
            running: AtomicBool::new(false),
            ended: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The verification to show: `None` while the first one runs (past [`ChainCheck::WAIT`]).
    pub async fn get(self: &Arc<Self>) -> Option<Checked> {
        self.get_within(Self::FRESH, Self::WAIT).await
    }

    async fn get_within(
        self: &Arc<Self>,
        fresh: std::time::Duration,
        wait: std::time::Duration,
    ) -> Option<Checked> {
        let mut ended = self.ended.subscribe();
        let seen = *ended.borrow_and_update();
        let last = self.last();
        if let Some(done) = &last
            && done.result.is_ok()
        {
            if done.ended.elapsed() >= fresh {
                self.start();
            }
            return last;
        }
        self.start();
        let _ = tokio::time::timeout(wait, ended.wait_for(|n| *n > seen)).await;
        self.last().or(last)
    }

    fn last(&self) -> Option<Checked> {
        self.last.lock().ok().and_then(|l| l.clone())
    }

    /// Starts a verification in the background, unless one runs.
    fn start(self: &Arc<Self>) {
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let done = Checked::now(verify_chain(&me.store).await);
            if let Ok(mut last) = me.last.lock() {
                *last = Some(done);
            }
            me.running.store(false, Ordering::Release);
            me.ended.send_modify(|n| *n += 1);
        });
    }
}

impl Checked {
    /// A verification that ends now.
    pub fn now(result: Result<u64, String>) -> Self {
        Self {
            at: jiff::Timestamp::now(),
            ended: std::time::Instant::now(),
            result,
        }
    }

    /// When it ended, to the second, for a person to read.
    pub fn when(&self) -> String {
        self.at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
    }
}

/// Verifies the whole audit chain (and the stored checkpoint, when there is one); the
/// number of records, or a sentence naming the break.
pub async fn verify_chain(store: &Store) -> Result<u64, String> {
    let checkpoint = match (
        store.meta("audit.checkpoint").await,
        store.meta("audit.public_key").await,
    ) {
        (Ok(Some(line)), Ok(Some(key))) => match Checkpoint::parse(&line) {
            Ok(cp) if cp.verify(&key).is_ok() => Some(cp),
            _ => return Err("the stored checkpoint does not verify".into()),
        },
        (Err(e), _) | (_, Err(e)) => return Err(e.to_string()),
        _ => None,
    };
    let mut verifier = checkpoint
        .as_ref()
        .map(Verifier::with_checkpoint)
        .unwrap_or_default();
    match store.audit_verify(&mut verifier, |_| {}).await {
        Ok(Ok(())) => verifier.finish().map_err(|b| b.to_string()),
        Ok(Err(b)) => Err(b.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

async fn acc1(store: &Store) -> Result<Finding, rampart_store::StoreError> {
    let accounts = store.accounts().await?;
    let count = |k: AccountKind| accounts.iter().filter(|a| a.kind == k).count();
    let orphans: Vec<String> = accounts
        .iter()
        .filter(|a| a.kind == AccountKind::Service && a.owner.is_none())
        .map(|a| a.username.to_string())
        .collect();
    let mut evidence = vec![
        format!(
            "{} accounts: {} people, {} third parties, {} service accounts",
            accounts.len(),
            count(AccountKind::Person),
            count(AccountKind::ThirdParty),
            count(AccountKind::Service)
        ),
        "user names and emails are unique (case-insensitive), enforced by the database".into(),
    ];
    if !orphans.is_empty() {
        evidence.push(format!(
            "service accounts without an owner: {}",
            orphans.join(", ")
        ));
    }
    Ok(Finding::new(
        ControlId::Acc1,
        orphans.is_empty(),
        if orphans.is_empty() {
            "Every account is personal or owned by a person."
        } else {
            "Some service accounts have no owner."
        },
        evidence,
    ))
}

async fn acc2(store: &Store, policy: &PolicyConfig) -> Result<Finding, rampart_store::StoreError> {
    let accounts = store.accounts().await?;
    let humans: Vec<_> = accounts
        .iter()
        .filter(|a| a.active && a.kind.needs_mfa() && a.password_hash.is_some())
        .collect();
    // A second factor is TOTP or a WebAuthn key (security key, passkey).
    let with_mfa = humans.iter().filter(|a| a.has_mfa()).count();
    let with_webauthn = humans.iter().filter(|a| a.webauthn_keys > 0).count();
    let since = jiff::Timestamp::now().as_microsecond() - WINDOW_US;
    let without = store
        .audit_count_detail("session.start", since, "mfa", "none")
        .await?;
    let required = policy.mfa == MfaPolicy::Required;
    let pass = required && with_mfa == humans.len() && without == 0;
    Ok(Finding::new(
        ControlId::Acc2,
        pass,
        if pass {
            "MFA is required and every enrolled person uses it."
        } else {
            "MFA is not enforced everywhere."
        },
        vec![
            format!(
                "policy.mfa = {}",
                if required { "required" } else { "optional" }
            ),
            format!(
                "{with_mfa} of {} enrolled people and third parties have a second factor",
                humans.len()
            ),
            format!("{with_webauthn} of them hold a security key or passkey (WebAuthn)"),
            format!("{without} sessions started without MFA in the last 30 days"),
        ],
    ))
}

async fn acc6(store: &Store) -> Result<Finding, rampart_store::StoreError> {
    let now = jiff::Timestamp::now();
    let roles = store.roles().await?;
    let gateway_roles: BTreeSet<String> = roles
        .iter()
        .filter(|r| !r.grants.is_empty())
        .map(|r| r.name.to_string())
        .collect();
    let holders = live_holders(store, &gateway_roles, now).await?;
    let people = active_people(store).await?;
    // "A subset": everyone holding it is no restriction, unless there is only one person.
    let pass = holders.len() < people || people <= 1;
    let list = if holders.is_empty() {
        "nobody".to_owned()
    } else {
        holders.iter().cloned().collect::<Vec<_>>().join(", ")
    };
    Ok(Finding::new(
        ControlId::Acc6,
        pass,
        format!(
            "{} of {people} active people hold gateway access, by explicit grant only.",
            holders.len()
        ),
        vec![
            format!("gateway access held by: {list}"),
            format!("roles granting targets: {}", gateway_roles.len()),
        ],
    ))
}

/// ENC-3 (and the SSH side of ACC-5): SSH sessions of the last 30 days, each one through the
/// bastion with a per-session certificate, and who holds SSH grants.
async fn enc3(store: &Store) -> Result<Finding, rampart_store::StoreError> {
    let now = jiff::Timestamp::now();
    let targets = store.targets().await?;
    let ssh_targets: Vec<_> = targets
        .iter()
        .filter(|t| t.kind == rampart_access::TargetKind::Ssh)
        .collect();
    if ssh_targets.is_empty() {
        return Ok(Finding::not_checked(
            ControlId::Enc3,
            "no SSH target is registered: the bastion reaches no server yet",
        ));
    }
    let sessions = store
        .ssh_sessions(now.as_microsecond() - WINDOW_US, false, 100_000)
        .await?;
    let mut per_person: std::collections::BTreeMap<&str, usize> = Default::default();
    for s in &sessions {
        *per_person.entry(s.account.as_str()).or_default() += 1;
    }
    let roles = store.roles().await?;
    let ssh_roles: BTreeSet<String> = roles
        .iter()
        .filter(|r| {
            r.grants
                .iter()
                .any(|g| ssh_targets.iter().any(|t| g.admits(t, &g.login)))
        })
        .map(|r| r.name.to_string())
        .collect();
    let holders = live_holders(store, &ssh_roles, now).await?;
    let holders_text = if holders.is_empty() {
        "nobody".to_owned()
    } else {
        holders.iter().cloned().collect::<Vec<_>>().join(", ")
    };
    Ok(Finding::new(
        ControlId::Enc3,
        true,
        format!(
            "{} SSH sessions in the last 30 days, all through rampart's bastion with a per-session certificate; {} people hold SSH grants.",
            sessions.len(),
            holders.len()
        ),
        vec![
            format!(
                "SSH targets: {}",
                ssh_targets
                    .iter()
                    .map(|t| format!("{} ({})", t.name, t.environment))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            if per_person.is_empty() {
                "no SSH sessions in the last 30 days".into()
            } else {
                format!(
                    "sessions per person: {}",
                    per_person
                        .iter()
                        .map(|(p, n)| format!("{p} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            format!("SSH grants held by: {holders_text}"),
            "targets trust only rampart's user CA; that no other path reaches port 22 is ACC-5's network check".into(),
        ],
    ))
}

/// EXT-1: third parties hold no standing grant; each of their live grants expires within
/// the policy's limit.
async fn ext1(store: &Store, policy: &PolicyConfig) -> Result<Finding, rampart_store::StoreError> {
    let now = jiff::Timestamp::now();
    let limit_s = policy.third_party_grant_hours.get() * 3600;
    let third: BTreeSet<String> = store
        .accounts()
        .await?
        .into_iter()
        .filter(|a| a.active && a.kind == AccountKind::ThirdParty)
        .map(|a| a.username.to_string())
        .collect();
    let live: Vec<_> = store
        .bindings(None)
        .await?
        .into_iter()
        .filter(|b| third.contains(&b.account) && b.expires_at.is_none_or(|t| t > now))
        .collect();
    let standing: Vec<String> = live
        .iter()
        .filter(|b| {
            b.expires_at
                .is_none_or(|t| t.as_second() - now.as_second() > limit_s)
        })
        .map(|b| format!("{} ({})", b.account, b.role))
        .collect();
    let pass = standing.is_empty();
    let mut evidence = vec![
        format!(
            "{} active third-party accounts; {} live grants to them, each expiring within policy.third_party_grant_hours = {}",
            third.len(),
            live.len() - standing.len(),
            policy.third_party_grant_hours.get()
        ),
        requests_summary(store).await?,
    ];
    if !pass {
        evidence.push(format!(
            "standing or over-long grants: {}",
            standing.join(", ")
        ));
    }
    Ok(Finding::new(
        ControlId::Ext1,
        pass,
        if pass {
            "No third party holds a standing grant."
        } else {
            "Some third parties hold standing grants."
        },
        evidence,
    ))
}

/// Access requests of the last 30 days, by outcome.
async fn requests_summary(store: &Store) -> Result<String, rampart_store::StoreError> {
    let since = jiff::Timestamp::now().as_microsecond() - WINDOW_US;
    let recent: Vec<_> = store
        .access_requests(None)
        .await?
        .into_iter()
        .filter(|r| r.created_us >= since)
        .collect();
    let count = |s: rampart_store::RequestStatus| recent.iter().filter(|r| r.status == s).count();
    use rampart_store::RequestStatus::{Approved, Denied, Expired, Pending};
    Ok(format!(
        "access requests in the last 30 days: {} ({} approved, {} denied, {} lapsed, {} pending)",
        recent.len(),
        count(Approved),
        count(Denied),
        count(Expired),
        count(Pending)
    ))
}

/// The accounts holding one of `roles` through a binding that has not expired at `now`.
async fn live_holders(
    store: &Store,
    roles: &BTreeSet<String>,
    now: jiff::Timestamp,
) -> Result<BTreeSet<String>, rampart_store::StoreError> {
    Ok(store
        .bindings(None)
        .await?
        .into_iter()
        .filter(|b| roles.contains(b.role.as_str()) && b.expires_at.is_none_or(|t| t > now))
        .map(|b| b.account)
        .collect())
}

/// How many active personal accounts there are.
async fn active_people(store: &Store) -> Result<usize, rampart_store::StoreError> {
    Ok(store
        .accounts()
        .await?
        .into_iter()
        .filter(|a| a.active && a.kind == AccountKind::Person)
        .count())
}

async fn log3(
    store: &Store,
    checked: Option<&Checked>,
) -> Result<Finding, rampart_store::StoreError> {
    let since = jiff::Timestamp::now().as_microsecond() - WINDOW_US;
    let sessions = store.audit_counts_by_actor("session.start", since).await?;
    let Some(checked) = checked else {
        return Ok(Finding::not_checked(
            ControlId::Log3,
            "the audit chain's first verification since rampart started is still running: reload in a moment",
        ));
    };
    let verified = &checked.result;
    let mut evidence = vec![match verified {
        Ok(n) => format!(
            "audit chain of {n} records verified end to end at {}",
            checked.when()
        ),
        Err(text) => format!("audit chain broken (found at {}): {text}", checked.when()),
    }];
    evidence.push(if sessions.is_empty() {
        "no sessions in the last 30 days".into()
    } else {
        format!(
            "sessions in the last 30 days: {}",
            sessions
                .iter()
                .map(|(who, n)| format!("{} {n}", who.trim_start_matches("user:")))
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    Ok(Finding::new(
        ControlId::Log3,
        verified.is_ok(),
        if verified.is_ok() {
            "Every login, session and admin action is in a verified, tamper-evident log."
        } else {
            "The audit log has been tampered with."
        },
        evidence,
    ))
}

/// Lines sampled from the log store for the LOG-2 scan.
const LOG2_SAMPLE: u32 = 2000;

/// LOG-1 (lines per day per source, last line received, silent sources), LOG-2 (scrub
/// counts, and a scan of the newest stored lines that must find no personal data) and LOG-5
/// (the oldest stored day lies within the retention, which lies within 15..=30 by type).
/// `live_sources` are the sources holding a live token; `now` comes from the caller's clock.
pub async fn logs(
    store: &rampart_logs::LogStore,
    retention: rampart_logs::RetentionDays,
    live_sources: &[String],
    now: jiff::Timestamp,
) -> Vec<Finding> {
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let now_us = now.as_microsecond();
    let day_us = 86_400_000_000;
    let mut findings = Vec::new();
    // LOG-1
    findings.push(match store.source_days().await {
        Err(e) => Finding::not_checked(
            ControlId::Log1,
            format!("the log store could not be read: {e}"),
        ),
        Ok(days) => {
            let mut last: std::collections::BTreeMap<String, i64> =
                std::collections::BTreeMap::new();
            for d in &days {
                let entry = last.entry(d.source.clone()).or_insert(d.last_us);
                *entry = (*entry).max(d.last_us);
            }
            let silent: Vec<String> = live_sources
                .iter()
                .filter(|s| last.get(*s).is_none_or(|t| *t < now_us - day_us))
                .cloned()
                .collect();
            let recent = last.values().any(|t| *t >= now_us - day_us);
            let mut evidence: Vec<String> = days
                .iter()
                .rev()
                .take(50)
                .map(|d| format!("{} {}: {} lines", d.day, d.source, d.lines))
                .collect();
            for (source, t) in &last {
                evidence.push(format!("{source}: last line received {}", us_text(*t)));
            }
            if !silent.is_empty() {
                evidence.push(format!(
                    "sources with a token but no line in 24 h: {}",
                    silent.join(", ")
                ));
            }
            let pass = recent && silent.is_empty();
            Finding::new(
                ControlId::Log1,
                pass,
                if pass {
                    "Application logs arrive continuously from every source holding a token."
                } else if recent {
                    "Some log sources have been silent for more than a day."
                } else {
                    "No application log line was received in the last 24 hours."
                },
                evidence,
            )
        }
    });
    // LOG-2
    let scrubber = rampart_scrub::Scrubber::new(&rampart_scrub::ScrubConfig::default(), None);
    let sample = store
        .search(&rampart_logs::Query {
            since_us: Some(now_us - 30 * day_us),
            until_us: Some(now_us + 1),
            limit: LOG2_SAMPLE,
            ..rampart_logs::Query::default()
        })
        .await;
    findings.push(match (store.scrub_counts().await, sample, scrubber) {
        (Err(e), _, _) | (_, Err(e), _) => {
            Finding::not_checked(ControlId::Log2, format!("the log store could not be read: {e}"))
        }
        (_, _, Err(e)) => Finding::not_checked(ControlId::Log2, format!("the scrubber could not be built: {e}")),
        (Ok(counts), Ok(sample), Ok(scrubber)) => {
            let dirty = sample
                .iter()
                .filter(|l| {
                    !scrubber.find(&l.message).is_empty()
                        || l.fields.as_deref().is_some_and(|f| !scrubber.find(f).is_empty())
                })
                .count();
            let mut per_detector: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
            for ((_, detector), n) in &counts {
                *per_detector.entry(detector.as_str()).or_insert(0) += n;
            }
            let removed = if per_detector.is_empty() {
                "nothing to remove so far".to_owned()
            } else {
                per_detector
                    .iter()
                    .map(|(d, n)| format!("{d} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            Finding::new(
                ControlId::Log2,
                dirty == 0,
                if dirty == 0 {
                    "Every stored log line passed the scrubber; a scan of the newest lines finds no personal data."
                } else {
                    "Stored log lines hold personal data."
                },
                vec![
                    format!("removed before storage (stored days): {removed}"),
                    format!("scan of the newest {} stored lines: {dirty} with personal data", sample.len()),
                ],
            )
        }
    });
    // LOG-5
    findings.push(match store.days_on_disk() {
        Err(e) => Finding::not_checked(ControlId::Log5, format!("the log store could not be read: {e}")),
        Ok(days) => {
            let oldest = days.first().copied();
            let age = oldest.map(|d| rampart_logs::store::day_age(d, today));
            let pass = age.is_none_or(|a| a <= retention.get());
            Finding::new(
                ControlId::Log5,
                pass,
                format!(
                    "Application logs are kept {} days (the page allows 15 to 30) and purged by whole days.",
                    retention.get()
                ),
                vec![
                    format!("logs.retention_days = {retention} (a value outside 15..=30 stops rampart at startup)"),
                    match (oldest, age) {
                        (Some(d), Some(a)) => format!("oldest stored day: {d}, {a} days old; {} days stored", days.len()),
                        _ => "no day stored yet".to_owned(),
                    },
                ],
            )
        }
    });
    findings
}

fn us_text(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// Evidence for BAK-1..5 from the backup catalog, the retention plan and the audit log.
/// Without a recipient, backups do not run and BAK-1..4 fail saying so.
pub async fn backups(
    store: &Store,
    config: &rampart_backup::BackupConfig,
    now: jiff::Timestamp,
) -> Vec<Finding> {
    match backup_findings(store, config, now).await {
        Ok(findings) => findings,
        Err(e) => [
            ControlId::Bak1,
            ControlId::Bak2,
            ControlId::Bak3,
            ControlId::Bak4,
            ControlId::Bak5,
        ]
        .into_iter()
        .map(|c| Finding::not_checked(c, format!("evidence could not be read: {e}")))
        .collect(),
    }
}

/// What the restore drill proves: when it last ran, and whether it restores (a drill
/// identity is stored) or only reads objects back.
async fn drill_line(
    store: &Store,
    config: &rampart_backup::BackupConfig,
    now: jiff::Timestamp,
) -> Result<String, rampart_store::StoreError> {
    use rampart_backup::drill::{DRILL_IDENTITY, LAST_DRILL};
    let last = store
        .meta(LAST_DRILL)
        .await?
        .and_then(|v| v.parse::<i64>().ok())
        .map_or_else(
            || "never run yet".to_owned(),
            |us| {
                format!(
                    "last run {} minutes ago",
                    (now.as_microsecond() - us) / 60_000_000
                )
            },
        );
    let how = if store.meta(DRILL_IDENTITY).await?.is_some() {
        "restores into a throwaway cluster with the stored drill identity"
    } else {
        "restores are unverified: no drill identity is stored, so the drill only reads objects back and checks their hash"
    };
    Ok(format!(
        "restore drill every {} h, {last}; {how}",
        config.drill_hours
    ))
}

async fn backup_findings(
    store: &Store,
    config: &rampart_backup::BackupConfig,
    now: jiff::Timestamp,
) -> Result<Vec<Finding>, rampart_store::StoreError> {
    use rampart_backup::Reason;

    let rows = store.backups().await?;
    let plan = rampart_backup::jobs::plan_rows(&rows, config, now);
    let policy = &config.retention;
    let on = !config.recipients.is_empty();
    let off_note = "backups are off: backup.recipients is empty".to_owned();

    // BAK-1: the newest good backup of each source is younger than 6 hours.
    let mut newest: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.status == "complete" && r.verification != "failed")
    {
        let e = newest.entry(r.source.as_str()).or_insert(r.started_us);
        *e = (*e).max(r.started_us);
    }
    let limit_us = 6 * 3600 * 1_000_000_i64;
    let stale: Vec<String> = newest
        .iter()
        .filter(|(_, us)| now.as_microsecond() - **us >= limit_us)
        .map(|(s, _)| (*s).to_owned())
        .collect();
    let mut ev1 = vec![format!(
        "backup.interval = {:#}; base backups kept {} days",
        config.interval.get(),
        policy.base_days
    )];
    for (source, us) in &newest {
        ev1.push(format!(
            "{source}: newest good backup {} minutes old",
            (now.as_microsecond() - us) / 60_000_000
        ));
    }
    if !on {
        ev1.push(off_note.clone());
    }
    ev1.push(drill_line(store, config, now).await?);
    let pass1 = on && !newest.is_empty() && stale.is_empty();
    let bak1 = Finding::new(
        ControlId::Bak1,
        pass1,
        if pass1 {
            "Every source has a base backup younger than 6 hours.".to_owned()
        } else if stale.is_empty() {
            "No base backup has been made yet.".to_owned()
        } else {
            format!(
                "No base backup in the last 6 hours for: {}.",
                stale.join(", ")
            )
        },
        ev1,
    );

    // BAK-2..4: the tiers the plan keeps, against the policy.
    let tier =
        |control: ControlId, name: &str, window: String, is: fn(&Reason) -> bool| -> Finding {
            let kept: Vec<&rampart_backup::Decision> =
                plan.kept().filter(|d| d.reasons.iter().any(is)).collect();
            let oldest = kept.iter().map(|d| d.started).min();
            let pending = plan.deletions().count();
            let pass = on && !kept.is_empty();
            let mut evidence = vec![
                format!(
                    "policy: {name} backups kept {window} ({} rule, {})",
                    policy.rule,
                    policy.time_zone.name()
                ),
                format!("{} {name} backups kept", kept.len()),
            ];
            if let Some(t) = oldest {
                evidence.push(format!(
                    "oldest {name} backup: {}",
                    t.strftime("%Y-%m-%d %H:%M UTC")
                ));
            }
            if pending > 0 {
                evidence.push(format!("{pending} backups await pruning by the plan"));
            }
            if !on {
                evidence.push(off_note.clone());
            }
            Finding::new(
                control,
                pass,
                if pass {
                    format!(
                        "{} {name} backups are kept for {window}, within the page's range.",
                        kept.len()
                    )
                } else {
                    format!("No {name} backup is kept yet.")
                },
                evidence,
            )
        };
    let bak2 = tier(
        ControlId::Bak2,
        "daily",
        format!("{} days", policy.daily_days),
        |r| matches!(r, Reason::Daily { .. }),
    );
    let bak3 = tier(
        ControlId::Bak3,
        "weekly",
        format!("{} weeks", policy.weekly_weeks),
        |r| matches!(r, Reason::Weekly { .. }),
    );
    let bak4 = tier(
        ControlId::Bak4,
        "monthly",
        format!("{} months", policy.monthly_months),
        |r| matches!(r, Reason::Monthly { .. }),
    );

    // BAK-5: who holds backup permissions, and the access events.
    let backup_permission = |p: &rampart_access::Permission| p.as_str().starts_with("backup.");
    let roles: BTreeSet<String> = store
        .roles()
        .await?
        .into_iter()
        .filter(|r| r.permissions.iter().any(backup_permission))
        .map(|r| r.name.to_string())
        .collect();
    let holders = live_holders(store, &roles, now).await?;
    let people = active_people(store).await?;
    let since = now.as_microsecond() - WINDOW_US;
    let mut events = Vec::new();
    for action in [
        "backup.list",
        "backup.restore",
        "backup.download",
        "backup.verify",
        "backup.prune",
        "backup.pin",
    ] {
        let n: u64 = store
            .audit_counts_by_actor(action, since)
            .await?
            .iter()
            .map(|(_, n)| *n as u64)
            .sum();
        if n > 0 {
            events.push(format!("{action} {n}"));
        }
    }
    let pass5 = holders.len() < people || people <= 1;
    let bak5 = Finding::new(
        ControlId::Bak5,
        pass5,
        format!(
            "{} of {people} active people hold backup permissions; every access is an audit event.",
            holders.len()
        ),
        vec![
            format!(
                "backup permissions held by: {}",
                if holders.is_empty() {
                    "nobody".to_owned()
                } else {
                    holders.iter().cloned().collect::<Vec<_>>().join(", ")
                }
            ),
            format!("roles with backup permissions: {}", roles.len()),
            if events.is_empty() {
                "no backup access in the last 30 days".into()
            } else {
                format!("backup access in the last 30 days: {}", events.join(", "))
            },
        ],
    );
    if !on {
        // Like the network controls without an inventory: nothing configured, nothing proven.
        let why = "not checked: backups are off until backup.recipients holds an age public key (`rampart backup keygen`)";
        return Ok(vec![
            Finding::not_checked(ControlId::Bak1, why),
            Finding::not_checked(ControlId::Bak2, why),
            Finding::not_checked(ControlId::Bak3, why),
            Finding::not_checked(ControlId::Bak4, why),
            bak5,
        ]);
    }
    Ok(vec![bak1, bak2, bak3, bak4, bak5])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use rampart_audit::{Action, Actor, AuditEvent};

    use super::*;

    async fn store(dir: &tempfile::TempDir) -> Store {
        Store::open(&format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("r.db").display()
        ))
        .await
        .unwrap()
    }

    async fn append(store: &Store, n: usize) {
        let events: Vec<AuditEvent> = (0..n)
            .map(|i| AuditEvent::new(Actor::System, Action::AppRequest, format!("t{i}")))
            .collect();
        store.append_audit(&events).await.unwrap();
    }

    /// Waits (at most 10 s) until no verification runs in the background.
    async fn settled(check: &ChainCheck) {
        for _ in 0..1000 {
            if !check.running.load(Ordering::Acquire) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the background verification never ended");
    }

    /// What a load shows (its time and result), waiting as long as a verification of these
    /// few records could take (a minute, rather than [`ChainCheck::WAIT`]).
    async fn shown(
        check: &Arc<ChainCheck>,
        fresh: Duration,
    ) -> (jiff::Timestamp, Result<u64, String>) {
        let checked = check
            .get_within(fresh, Duration::from_secs(60))
            .await
            .expect("a verification ended within the wait");
        (checked.at, checked.result)
    }

    /// A verification that found the chain whole serves the loads of the next ten
    /// minutes (newer records are counted at the next verification). Once older than that,
    /// loads still get it at once while a new one runs in the background, whose result
    /// the loads after it get.
    #[tokio::test]
    async fn a_whole_chain_is_verified_once_for_the_loads_that_follow() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(store(&dir).await);
        append(&store, 5).await;
        let n = verify_chain(&store).await.unwrap();
        let check = Arc::new(ChainCheck::new(store.clone()));
        let first = shown(&check, ChainCheck::FRESH).await;
        assert_eq!(first.1, Ok(n));
        append(&store, 3).await;
        assert_eq!(shown(&check, ChainCheck::FRESH).await, first);
        assert_eq!(shown(&check, Duration::ZERO).await, first, "shown at once");
        settled(&check).await;
        let later = shown(&check, ChainCheck::FRESH).await;
        assert_eq!(later.1, Ok(n + 3), "the background verification's");
        assert!(later.0 >= first.0);
    }

    /// The first load waits for the first verification at most [`ChainCheck::WAIT`], then
    /// says it runs; the loads after it get its result.
    #[tokio::test]
    async fn the_first_load_says_the_first_verification_runs_when_it_takes_long() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(store(&dir).await);
        append(&store, 5).await;
        let check = Arc::new(ChainCheck::new(store.clone()));
        // A wait of nothing stands for a verification longer than the wait.
        assert!(
            check
                .get_within(ChainCheck::FRESH, Duration::ZERO)
                .await
                .is_none()
        );
        let pending = log3(&store, None).await.unwrap();
        assert_eq!(
            pending.status,
            rampart_report::Status::NotChecked,
            "{pending:?}"
        );
        settled(&check).await;
        assert_eq!(shown(&check, ChainCheck::FRESH).await.1, Ok(5));
        let report = collect(&store, &PolicyConfig::default(), Vec::new(), Some(&check)).await;
        let log3 = report
            .findings
            .iter()
            .find(|f| f.control == ControlId::Log3)
            .unwrap();
        assert_eq!(log3.status, rampart_report::Status::Pass, "{log3:?}");
    }

    /// A break is shown from the first verification that finds it (one in the background
    /// included) and never taken as current: each load verifies again.
    #[tokio::test]
    async fn a_broken_chain_is_verified_again_at_every_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(store(&dir).await);
        append(&store, 5).await;
        let check = Arc::new(ChainCheck::new(store.clone()));
        assert!(shown(&check, ChainCheck::FRESH).await.1.is_ok());
        let set = |subject: &'static str| {
            sqlx::query("UPDATE audit_log SET subject = $1 WHERE seq = 3").bind(subject)
        };
        let original: String = sqlx::query_scalar("SELECT subject FROM audit_log WHERE seq = 3")
            .fetch_one(store.pool())
            .await
            .unwrap();
        set("forged").execute(store.pool()).await.unwrap();
        // The stale whole result is shown while the background verification runs.
        assert!(shown(&check, Duration::ZERO).await.1.is_ok());
        settled(&check).await;
        let found = shown(&check, ChainCheck::FRESH).await;
        assert!(found.1.is_err(), "{found:?}");
        let original: &'static str = original.leak();
        set(original).execute(store.pool()).await.unwrap();
        assert!(
            shown(&check, ChainCheck::FRESH).await.1.is_ok(),
            "the break was not reused"
        );
    }
}
