//! `rampart report`: the security page with live evidence.

use anyhow::Result;
use rampart_web::{evidence, probe, tls};

use super::Ctx;
use crate::Exit;

/// Output formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// A self-contained HTML page.
    Html,
    /// JSON for machines.
    Json,
    /// Markdown tables.
    Md,
}

/// Arguments of `rampart report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Md)]
    pub format: Format,
}

/// Gathers evidence (probing the running listeners) and prints the report.
pub async fn run(ctx: &Ctx, args: ReportArgs) -> Result<Exit> {
    let web = &ctx.config.web;
    let leaf = ctx
        .config
        .tls
        .paths(&ctx.dir.0)
        .and_then(|p| tls::leaf_der(&p))
        .unwrap_or_default();
    let probe = probe::enc2(
        web.http_listen,
        web.https_listen,
        &web.public_origin(),
        &leaf,
    )
    .await;
    let network = rampart_web::network::check_now(&ctx.config.network);
    let mut extra = vec![probe];
    extra.extend(rampart_web::network::findings(&network));
    let logs = rampart_logs::LogStore::open(&ctx.config.logs_dir(&ctx.dir.0)).await?;
    let live: Vec<String> = ctx
        .store
        .log_tokens()
        .await?
        .into_iter()
        .filter(|t| t.revoked_us.is_none())
        .map(|t| t.source)
        .collect();
    extra.extend(
        evidence::logs(
            &logs,
            ctx.config.logs.retention_days,
            &live,
            jiff::Timestamp::now(),
        )
        .await,
    );
    logs.close().await;
    extra.extend(evidence::backups(&ctx.store, &ctx.config.backup, jiff::Timestamp::now()).await);
    let report = evidence::collect(&ctx.store, &ctx.config.policy, extra, None).await;
    let text = match args.format {
        Format::Html => report.to_html_page(),
        Format::Json => report.to_json(),
        Format::Md => report.to_markdown(),
    };
    println!("{text}");
    Ok(Exit::Ok)
}
