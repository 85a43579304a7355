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
    let store = Arc::new(
        Store::open(&config.store_url(&dir.0))
            .await
            .context("cannot open the store")?,
    );
    store
        .set_meta("audit.public_key", &signing.public_key_hex())
        .await?;
    let logs = crate::logs::open(dir, &config).await?;
    let decoy_hash =
        tokio::task::spawn_blocking(move || rampart_identity::password::decoy_hash(cost)).await??;

    let master = Arc::new(master);
    let state = AppState::new(Inner {
        store: store.clone(),
        master: master.clone(),
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
        db_gateway: config.postgres.listen,
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
    let mut https_server =
        axum_server::from_tcp_rustls(https, rustls.clone()).handle(handle.clone());
    https_server.http_builder().http1().max_buf_size(64 * 1024);
    let https_task = tokio::spawn(
        https_server.serve(
            rampart_web::https_router(state.clone())
                .into_make_service_with_connect_info::<SocketAddr>(),
        ),
    );
    let http_task = tokio::spawn(
        axum_server::from_tcp(http)
            .handle(handle.clone())
            .serve(rampart_web::http_service(state.clone())),
    );
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
    let gateway = match postgres {
        Some(listener) => {
            let listener = tokio::net::TcpListener::from_std(listener)
                .context("cannot use the postgres listener")?;
            let gateway = rampart_postgres::Gateway::new(
                store.clone(),
                master.clone(),
                server_config.clone(),
                config.postgres.clone(),
            )
            .map_err(|e| exit_usage(e.to_string()))?;
            Some(tokio::spawn(gateway.serve(listener)))
        }
        None => None,
    };
    let backups = tokio::spawn(rampart_backup::schedule::keep_backed_up(
        Arc::new(config.backup.clone()),
        dir.0.clone(),
        store.clone(),
        config.store.url.is_none().then(|| dir.0.join("rampart.db")),
        uuid::Uuid::new_v4().to_string(),
    ));
    let housekeeping = tokio::spawn(housekeeping(
        store.clone(),
        signing,
        config.policy.sessions(),
    ));

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
    handle.graceful_shutdown(Some(DRAIN));
    let deadline = tokio::time::Instant::now() + DRAIN + Duration::from_secs(1);
    while handle.connection_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watcher.abort();
    if let Some(task) = gateway {
        task.abort();
    }
    network.abort();
    backups.abort();
    housekeeping.abort();
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
    Ok(Exit::Ok)
}

fn bind(addr: SocketAddr, key: &str) -> Result<TcpListener> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| exit_usage(format!("cannot listen on {addr} ({key}): {e}")))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

fn read_key(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        exit_usage(format!(
            "cannot read {}: {e}; run `rampart init` to create the data directory",
            path.display()
        ))
    })
}

/// Signs a checkpoint of the audit head every ten minutes and purges dead sessions.
/// Every minute, ends (and audits) the sessions that timed out and the access requests
/// that lapsed; every ten minutes, signs
/// an audit checkpoint and purges sessions past their absolute lifetime.
async fn housekeeping(
    store: Arc<Store>,
    signing: SigningKey,
    sessions: rampart_identity::session::SessionPolicy,
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
        match store
            .expire_access_requests(jiff::Timestamp::now().as_microsecond())
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(requests = n, "access requests lapsed"),
            Err(e) => tracing::warn!(error = %e, "could not expire access requests"),
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
