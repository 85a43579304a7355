//! `rampart serve`: bind every listener (or exit 64 saying which one failed), then serve
//! until SIGTERM or Ctrl-C, then drain in-flight requests, write the shutdown record, exit.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use rampart_audit::{Action, Actor, AuditEvent, SigningKey};
use rampart_identity::password::Cost;
use rampart_identity::sealed::MasterKey;
use rampart_store::Store;
use rampart_web::{AppState, Inner, Metrics, tls};

use crate::config::{Config, DataDir};
use crate::{Exit, exit_usage};

/// How long a request to an app waits for the audit log to take writes before it gets 503.
const APPS_AUDIT_WAIT: Duration = Duration::from_secs(5);

/// Validates `[[apps]]`, registers them as `http` targets, builds their clients, opens the
/// signing key and starts the request audit writer.
async fn start_apps(
    config: &Config,
    store: &Arc<Store>,
    master: &MasterKey,
) -> Result<(
    Option<Arc<rampart_web::apps::Apps>>,
    Option<tokio::task::JoinHandle<()>>,
)> {
    if config.apps.is_empty() {
        return Ok((None, None));
    }
    let apps = rampart_proxy::config::validate(&config.apps, &config.web.public_host)
        .map_err(|e| exit_usage(e.0))?;
    rampart_web::apps::register_targets(store, &apps)
        .await
        .context("cannot register the apps as targets")?;
    let (apps, task) = rampart_web::apps::Apps::start(
        apps,
        store.clone(),
        master,
        &config.web.public_origin(),
        APPS_AUDIT_WAIT,
    )
    .await
    .map_err(exit_usage)?;
    Ok((Some(Arc::new(apps)), Some(task)))
}

/// How long in-flight requests get after a stop signal.
const DRAIN: Duration = Duration::from_secs(20);

/// Serves until a stop signal. Errors that are the operator's to fix exit 64.
pub async fn run(dir: &DataDir, config: Config, cost: Cost) -> Result<Exit> {
    // Before the ports open: a SIGTERM that arrives during start-up must drain, not kill.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    let https = bind(config.web.https_listen, "web.https_listen")?;
    let http = bind(config.web.http_listen, "web.http_listen")?;
    let metrics = bind(config.web.metrics_listen, "web.metrics_listen")?;
    let syslog = match config.logs.syslog_listen {
        Some(addr) => Some(bind(addr, "logs.syslog_listen")?),
        None => None,
    };
    let ssh = match config.ssh.listen {
        Some(addr) => Some(bind(addr, "ssh.listen")?),
        None => None,
    };
    let postgres = match config.postgres.listen {
        Some(addr) => Some(bind(addr, "postgres.listen")?),
        None => None,
    };

    let paths = config
        .tls
        .paths(&dir.0)
        .map_err(|e| exit_usage(e.to_string()))?;
    let server_config = tls::server_config(&paths).map_err(|e| exit_usage(e.to_string()))?;
    let leaf_der = tls::leaf_der(&paths).map_err(|e| exit_usage(e.to_string()))?;
    let master = read_key(&dir.master_key())?;
    let master = MasterKey::from_bytes(&master)
        .map_err(|e| exit_usage(format!("{}: {e}", dir.master_key().display())))?;
    let signing = SigningKey::from_pkcs8(&read_key(&dir.audit_key())?)
        .map_err(|e| exit_usage(format!("{}: {e}", dir.audit_key().display())))?;
    let audit_thread = AuditThread::start().context("cannot start the audit committer's thread")?;
    let store = Arc::new(
        Store::open_with_committer(&config.store_url(&dir.0), audit_thread.handle())
            .await
            .context("cannot open the store")?,
    );
    store
        .set_meta("audit.public_key", &signing.public_key_hex())
        .await?;
    crate::init::top_up_admin(&store)
        .await
        .context("cannot bring the admin role up to date")?;
    let logs = crate::logs::open(dir, &config).await?;
    let decoy_hash =
        tokio::task::spawn_blocking(move || rampart_identity::password::decoy_hash(cost)).await??;

    let master = Arc::new(master);
    let master_for_recordings = master.clone();
    let (apps, apps_audit) = start_apps(&config, &store, &master).await?;
    let state = AppState::new(Inner {
        store: store.clone(),
        master,
        web: config.web.clone(),
        policy: config.policy.clone(),
        cost,
        decoy_hash,
        hashing: tokio::sync::Semaphore::new(2),
        metrics: Metrics::default(),
        leaf_der: std::sync::RwLock::new(leaf_der),
        challenges: Default::default(),
        network: Arc::new(std::sync::RwLock::new(
            rampart_web::network::NetworkState::NotConfigured,
        )),
        logs: logs.clone(),
        backup: rampart_web::backups::BackupSite {
            config: Arc::new(config.backup.clone()),
            data_dir: dir.0.clone(),
            own_database: config.store.url.is_none().then(|| dir.0.join("rampart.db")),
        },
        ssh: Some(ssh_hooks(dir, &master_for_recordings)),
        db_gateway: config.postgres.listen,
        apps,
        access_webhook: alerts_webhook(&config)?,
        stopping: tokio::sync::watch::Sender::new(false),
    });

    store
        .append_audit(&[
            AuditEvent::new(Actor::System, Action::Startup, env!("CARGO_PKG_VERSION"))
                .detail("https", config.web.https_listen.to_string())
                .detail("http", config.web.http_listen.to_string()),
        ])
        .await
        .context("cannot write the startup audit record")?;

    let handle = Handle::new();
    let rustls = RustlsConfig::from_config(server_config.clone());
    let https_task = tokio::spawn(rampart_web::front::serve_https(
        https,
        rustls.clone(),
        handle.clone(),
        rampart_web::https_router(state.clone()),
        64 * 1024,
    ));
    let http_task = tokio::spawn(rampart_web::redirect::serve(
        http,
        rampart_web::http_redirect(&state),
        state.stopping.subscribe(),
    ));
    let metrics_task = tokio::spawn(
        axum_server::from_tcp(metrics)
            .handle(handle.clone())
            .serve(rampart_web::metrics_router(state.clone()).into_make_service()),
    );
    let reload = rustls.clone();
    let reloaded = state.clone();
    let apply: Arc<tls::Apply> = Arc::new(Box::new(move |c, leaf| {
        reload.reload_from_config(c);
        if let Ok(mut l) = reloaded.leaf_der.write() {
            *l = leaf;
        }
    }));
    let watcher = tokio::spawn(tls::watch(paths, Duration::from_secs(5), apply.clone()));
    let acme = (config.tls.mode == tls::TlsMode::Acme).then(|| {
        let domains = if config.tls.acme.domains.is_empty() {
            vec![config.web.public_host.clone()]
        } else {
            config.tls.acme.domains.clone()
        };
        tokio::spawn(rampart_web::acme::keep_renewed(
            config.tls.acme.clone(),
            domains,
            dir.0.clone(),
            state.challenges.clone(),
            store.clone(),
            apply.clone(),
        ))
    });
    let network = tokio::spawn(rampart_web::network::keep_checked(
        config.network.clone(),
        state.network.clone(),
        store.clone(),
        Duration::from_secs(30),
    ));
    let log_tasks = crate::logs::spawn(&state, syslog, rustls.clone())?;
    let backup_notify = backup_alerts(&config)?;
    let bastion = match ssh {
        Some(listener) => Some(tokio::spawn(serve_ssh(
            dir,
            &config,
            store.clone(),
            state.master.clone(),
            listener,
        )?)),
        None => None,
    };
    let gateway = match postgres {
        Some(listener) => {
            let gateway = rampart_postgres::Gateway::new(
                store.clone(),
                state.master.clone(),
                server_config.clone(),
                config.postgres.clone(),
            )
            .map_err(|e| exit_usage(e.to_string()))?;
            // On the audit committer's thread: each statement waits for its record's
            // commit, and the answer then wakes no other thread.
            let (ready, started) = tokio::sync::oneshot::channel();
            let task = audit_thread.handle().spawn(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => {
                        let _ = ready.send(Ok(()));
                        gateway.serve(listener).await;
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                }
            });
            started
                .await
                .context("the audit committer's thread stopped")?
                .context("cannot use the postgres listener")?;
            Some(task)
        }
        None => None,
    };
    let backups = tokio::spawn(rampart_backup::schedule::keep_backed_up(
        state.backup.config.clone(),
        dir.0.clone(),
        store.clone(),
        state.backup.own_database.clone(),
        uuid::Uuid::new_v4().to_string(),
        {
            let master = state.master.clone();
            Arc::new(move |context: &str, sealed: &str| {
                master
                    .open(context, sealed)
                    .ok()
                    .map(|plain| plain.expose_secret().clone())
            })
        },
        backup_notify,
    ));
    let housekeeping = tokio::spawn(housekeeping(
        store.clone(),
        signing,
        config.policy.sessions(),
        config.policy.clone(),
        alerts_webhook(&config)?,
    ));
    let anomalies = tokio::spawn(keep_watching_anomalies(
        store.clone(),
        alerts_webhook(&config)?,
    ));
    let rollup = tokio::spawn(keep_counting(store.clone()));

    tracing::info!(https = %config.web.https_listen, http = %config.web.http_listen, origin = %config.web.public_origin(), "rampart is serving");
    eprintln!(
        "rampart is serving {} (HTTP {} redirects to it). Stop with Ctrl-C.",
        config.web.public_origin(),
        config.web.http_listen
    );

    let failed = tokio::select! {
        _ = tokio::signal::ctrl_c() => None,
        _ = term.recv() => None,
        r = https_task => Some(("HTTPS", r)),
        r = http_task => Some(("HTTP", r)),
        r = metrics_task => Some(("metrics", r)),
    };
    if let Some((which, result)) = failed {
        let why = match result {
            Ok(Ok(())) => "stopped".to_owned(),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        anyhow::bail!("the {which} listener failed: {why}");
    }
    eprintln!(
        "stopping: finishing in-flight requests (up to {} s)",
        DRAIN.as_secs()
    );
    state.stopping.send_replace(true);
    handle.graceful_shutdown(Some(DRAIN));
    let deadline = tokio::time::Instant::now() + DRAIN + Duration::from_secs(1);
    while handle.connection_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watcher.abort();
    if let Some(apps) = &state.apps {
        // Let the request audit writer drain what the finished requests queued.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !apps.audit.is_idle() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    if let Some(task) = apps_audit {
        task.abort();
    }
    if let Some(task) = gateway {
        task.abort();
    }
    network.abort();
    backups.abort();
    housekeeping.abort();
    anomalies.abort();
    rollup.abort();
    if let Some(task) = bastion {
        task.abort();
    }
    for task in log_tasks {
        task.abort();
    }
    if let Some(logs) = &state.logs {
        logs.store().close().await;
    }
    if let Some(task) = acme {
        task.abort();
    }
    store
        .append_audit(&[AuditEvent::new(Actor::System, Action::Shutdown, "signal")])
        .await
        .context("cannot write the shutdown audit record")?;
    store.close().await;
    audit_thread.stop();
    Ok(Exit::Ok)
}

/// A thread of its own with a single-threaded runtime, where the audit group committer runs
/// and the PostgreSQL gateway with it, as PgBouncer runs on one thread: a statement's record
/// is committed and its connection answered there, with no wake-up between threads. The
/// rest of `serve` stays on the main runtime (the front door on threads of its own).
struct AuditThread {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AuditThread {
    /// How long the thread's blocking work gets to end when it stops.
    const STOP_WAIT: Duration = Duration::from_secs(1);

    fn start() -> std::io::Result<Self> {
        let (tell, told) = std::sync::mpsc::sync_channel(1);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("rampart-audit".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = tell.send(Err(e));
                        return;
                    }
                };
                let _ = tell.send(Ok(runtime.handle().clone()));
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                runtime.shutdown_timeout(Self::STOP_WAIT);
            })?;
        let handle = told
            .recv()
            .map_err(|_| std::io::Error::other("the thread ended before its runtime started"))??;
        Ok(Self {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Ends the runtime (what still runs there is dropped) and waits for the thread.
    fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for AuditThread {
    fn drop(&mut self) {
        // An early return from `serve` (a listener failed) still ends the thread.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// What the admin UI borrows from the bastion: opening its sealed recordings under the
/// master key, and parsing public keys as the bastion will see them.
fn ssh_hooks(dir: &DataDir, master: &Arc<MasterKey>) -> rampart_web::ssh::SshHooks {
    let folder = dir.0.join("recordings");
    let master = master.clone();
    rampart_web::ssh::SshHooks {
        open_recording: Arc::new(move |id: &str| {
            rampart_ssh::recording::open(&folder, id, &master).map_err(|e| e.to_string())
        }),
        parse_key: Arc::new(|line: &str| {
            let key = rampart_ssh::keys::parse_public(line).map_err(|e| e.to_string())?;
            Ok((
                rampart_ssh::keys::fingerprint(&key),
                rampart_ssh::keys::public_line(&key),
            ))
        }),
    }
}

/// The SSH bastion's task: keys from the data directory, the listener already bound.
fn serve_ssh(
    dir: &DataDir,
    config: &Config,
    store: Arc<Store>,
    master: Arc<MasterKey>,
    listener: TcpListener,
) -> Result<impl std::future::Future<Output = ()> + Send + 'static> {
    let read = |path: std::path::PathBuf| -> Result<rampart_ssh::PrivateKey> {
        let text = std::fs::read_to_string(&path).map_err(|e| {
            exit_usage(format!(
                "cannot read {}: {e}; run `rampart init` to create the data directory",
                path.display()
            ))
        })?;
        rampart_ssh::keys::private_from_text(&text)
            .map_err(|e| exit_usage(format!("{}: {e}", path.display())))
    };
    let host_key = read(dir.ssh_host_key())?;
    let ca = read(dir.ssh_user_ca())?;
    // A stable node id: sessions this node left live when it last stopped are ended (and
    // audited) before it serves again.
    let node_file = dir.0.join("node-id");
    let node = match std::fs::read_to_string(&node_file) {
        Ok(id) if !id.trim().is_empty() => id.trim().to_owned(),
        _ => {
            let id = uuid::Uuid::new_v4().to_string();
            std::fs::write(&node_file, &id)
                .with_context(|| format!("cannot write {}", node_file.display()))?;
            id
        }
    };
    let russh_config = Arc::new(rampart_ssh::server_config(host_key, &config.ssh));
    let store_for_orphans = store.clone();
    let bastion = rampart_ssh::Bastion::new(rampart_ssh::BastionParts {
        store,
        master,
        config: config.ssh.clone(),
        policy: config.policy.clone(),
        ca,
        node: node.clone(),
        recordings: dir.0.join("recordings"),
        public_host: config.web.public_host.clone(),
        host_cas: config
            .ssh
            .target_host_cas
            .iter()
            .map(|line| rampart_ssh::keys::parse_public(line))
            .collect::<Result<_, _>>()
            .map_err(|e| exit_usage(format!("ssh.target_host_cas: {e}")))?,
    });
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "SSH bastion is serving");
    Ok(async move {
        match store_for_orphans.end_orphan_ssh_sessions(&node).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(sessions = n, "ended SSH sessions left live by the last run"),
            Err(e) => {
                tracing::error!(error = %e, "could not end SSH sessions left live by the last run")
            }
        }
        if let Err(e) = rampart_ssh::serve(bastion, russh_config, listener).await {
            tracing::error!(error = %e, "the SSH listener failed");
        }
    })
}

fn bind(addr: SocketAddr, key: &str) -> Result<TcpListener> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| exit_usage(format!("cannot listen on {addr} ({key}): {e}")))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Where backup alerts go besides the audit log: the signed webhook of `[logs.alerts]`,
/// when one is set, as `{"rule": "backup", "kind": "backup_failed", "source", "status",
/// "at", "error"}`.
fn backup_alerts(config: &crate::config::Config) -> Result<rampart_backup::schedule::Notify> {
    let webhook = alerts_webhook(config)?;
    Ok(Arc::new(move |alert: rampart_backup::schedule::Alert| {
        let Some(webhook) = webhook.clone() else {
            return;
        };
        let body = serde_json::json!({
            "rule": "backup",
            "kind": "backup_failed",
            "source": alert.source,
            "status": if alert.firing { "firing" } else { "resolved" },
            "at": jiff::Timestamp::now().to_string(),
            "error": alert.error,
        })
        .to_string()
        .into_bytes();
        tokio::spawn(async move {
            let _ = rampart_web::logs::alerts::notify(&webhook, body).await;
        });
    }))
}

/// Every minute (every second while a step leaves newer records unread), the anomaly rules
/// over the new audit records, in their own task: learning a long history at startup holds
/// up nothing else.
async fn keep_watching_anomalies(
    store: Arc<Store>,
    webhook: Option<Arc<rampart_web::logs::alerts::Webhook>>,
) {
    let mut watch = None;
    loop {
        watch = watch_anomalies(&store, watch, webhook.as_ref()).await;
        // Behind (a busy gateway writes more statements in a minute than a step reads):
        // the next step comes after a second, so that alerts do not lag further and further.
        let behind = watch
            .as_ref()
            .is_some_and(rampart_web::anomalies::Watch::is_behind);
        tokio::time::sleep(Duration::from_secs(if behind { 1 } else { 60 })).await;
    }
}

/// Every minute, the hourly counts of the audit log catch up with it (one step a second
/// while they are behind), so that the evidence and the apps page read a month of a busy
/// gateway's or front door's records as a few hundred counts.
async fn keep_counting(store: Arc<Store>) {
    loop {
        let behind = match store.audit_rollup_step().await {
            Ok(behind) => behind,
            Err(e) => {
                tracing::warn!(error = %e, "could not count the audit log by the hour");
                false
            }
        };
        tokio::time::sleep(Duration::from_secs(if behind { 1 } else { 60 })).await;
    }
}

/// One step of the anomaly rules over the audit log (ACC-7), each alert also sent to the
/// signed `[logs.alerts]` webhook (in the background) as `{"rule": "anomaly", "kind",
/// "subject", "summary", "records", "at"}`; `None` after an error, so the next minute
/// learns the history again (from the rules' saved state and the records after it). The
/// state is saved every [`rampart_web::anomalies::SAVE_EVERY`] at most.
async fn watch_anomalies(
    store: &Store,
    watch: Option<rampart_web::anomalies::Watch>,
    webhook: Option<&Arc<rampart_web::logs::alerts::Webhook>>,
) -> Option<rampart_web::anomalies::Watch> {
    let mut watch = match watch {
        Some(w) => w,
        None => match rampart_web::anomalies::Watch::start(store).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "could not start the anomaly rules");
                return None;
            }
        },
    };
    match watch.step(store).await {
        Ok(alerts) => {
            if let Err(e) = watch.save_if_due(store).await {
                tracing::warn!(error = %e, "could not save the anomaly rules' state");
            }
            for a in &alerts {
                tracing::warn!(rule = a.rule.as_str(), subject = %a.subject, "{}", a.summary);
                if let Some(webhook) = webhook.cloned() {
                    let body = serde_json::json!({
                        "rule": "anomaly",
                        "kind": a.rule.as_str(),
                        "subject": a.subject,
                        "summary": a.summary,
                        "records": a.seqs.iter().take(50).collect::<Vec<_>>(),
                        "at": jiff::Timestamp::now().to_string(),
                    })
                    .to_string()
                    .into_bytes();
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(
                            rampart_web::access_hooks::SERVER_WAIT,
                            rampart_web::logs::alerts::notify(&webhook, body),
                        )
                        .await;
                    });
                }
            }
            Some(watch)
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not run the anomaly rules");
            None
        }
    }
}

/// Sends the expiry notices of the requests that lapsed in the sweep at `at_us` (those
/// expired whose deadline is within the minute before it).
async fn notify_expired(
    store: &Arc<Store>,
    webhook: Option<&Arc<rampart_web::logs::alerts::Webhook>>,
    at_us: i64,
) {
    use rampart_web::access_hooks::{Event, spawn};
    let Some(webhook) = webhook else {
        return;
    };
    let Ok(requests) = store.access_requests(None).await else {
        return;
    };
    for r in requests.into_iter().filter(|r| {
        r.status == rampart_store::RequestStatus::Expired
            && r.pending_until_us <= at_us
            && r.pending_until_us > at_us - 61_000_000
    }) {
        spawn(
            store.clone(),
            Some(webhook.clone()),
            Event::Expired,
            r,
            "expired",
            "system",
        );
    }
}

/// The signed webhook of `[logs.alerts]`, when one is set (backup alerts and access
/// request notices go there too).
pub(crate) fn alerts_webhook(
    config: &crate::config::Config,
) -> Result<Option<Arc<rampart_web::logs::alerts::Webhook>>> {
    let alerts = &config.logs.alerts;
    Ok(match (&alerts.webhook_url, &alerts.webhook_secret_file) {
        (Some(url), Some(file)) => {
            let key =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            Some(Arc::new(rampart_web::logs::alerts::Webhook {
                url: url.clone(),
                key: rampart_core::Secret::new(key.trim_ascii().to_vec()),
            }))
        }
        _ => None,
    })
}

pub(crate) fn read_key(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        exit_usage(format!(
            "cannot read {}: {e}; run `rampart init` to create the data directory",
            path.display()
        ))
    })
}

/// Signs a checkpoint of the audit head every ten minutes and purges dead sessions.
/// Every minute, ends (and audits) the sessions that timed out and the access requests
/// that lapsed and runs the access review schedule; every ten minutes, signs
/// an audit checkpoint and purges sessions past their absolute lifetime.
async fn housekeeping(
    store: Arc<Store>,
    signing: SigningKey,
    sessions: rampart_identity::session::SessionPolicy,
    policy: rampart_identity::policy::PolicyConfig,
    webhook: Option<Arc<rampart_web::logs::alerts::Webhook>>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    for minute in 0u64.. {
        tick.tick().await;
        let now = jiff::Timestamp::now().as_second();
        // A sweep ends at most 1,000 sessions; a full one is followed by another, so none
        // is purged below before its end is audited.
        for _ in 0..100 {
            match store.end_timed_out_sessions(&sessions, now).await {
                Ok(0) => break,
                Ok(n) => {
                    tracing::info!(sessions = n, "ended timed-out sessions");
                    if n < 1000 {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not end timed-out sessions");
                    break;
                }
            }
        }
        let lapsing = jiff::Timestamp::now().as_microsecond();
        match store.expire_access_requests(lapsing).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(requests = n, "access requests lapsed");
                notify_expired(&store, webhook.as_ref(), lapsing).await;
            }
            Err(e) => tracing::warn!(error = %e, "could not expire access requests"),
        }
        // Access reviews (ACC-7): close campaigns past their deadline, open the next one.
        match rampart_web::reviews::scheduled(
            &store,
            &policy,
            jiff::Timestamp::now().as_microsecond(),
        )
        .await
        {
            Ok((decided, closed, opened)) => {
                if decided > 0 {
                    tracing::info!(items = decided, "access review items missed their deadline");
                }
                if let Some(c) = &opened {
                    tracing::info!(campaign = %c.id, "opened an access review campaign");
                }
                if let Some(webhook) = &webhook {
                    for c in closed.into_iter().chain(opened) {
                        let (store, webhook) = (store.clone(), webhook.clone());
                        tokio::spawn(async move {
                            rampart_web::reviews::notice(
                                &store,
                                Some(&webhook),
                                &c,
                                rampart_web::access_hooks::SERVER_WAIT,
                            )
                            .await;
                        });
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not run the access review schedule"),
        }
        if minute % 10 != 0 {
            continue;
        }
        if let Err(e) = crate::cmd::audit::store_checkpoint(&store, &signing).await {
            tracing::warn!(error = %e, "could not sign an audit checkpoint");
        }
        if let Err(e) = store.purge_sessions(now - sessions.absolute_secs).await {
            tracing::warn!(error = %e, "could not purge old sessions");
        }
    }
}
