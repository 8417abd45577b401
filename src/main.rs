//! The `understudy` command: parse flags, load and validate the config, serve until
//! SIGINT/SIGTERM, reload on SIGHUP and on file changes.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable
    )
)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use understudy::config::{self, watch};
use understudy::failover::probe;
use understudy::App;

const AFTER_HELP: &str = "\
Environment:
  UNDERSTUDY_CONFIG    config file when --config is not given (default proxy.toml)
  RUST_LOG             log filter, e.g. info, debug, understudy=debug (default info)
  NO_COLOR             any value: no colours in pretty logs (never used when stderr
                       is not a terminal)
  provider keys        each [providers.NAME] reads its key from the variable that its
                       api_key_env names (e.g. OPENAI_API_KEY); unset = provider disabled
  client keys          server.api_keys_env names a variable of comma-separated keys
                       that clients must send as `Authorization: Bearer KEY`

Signals:
  SIGHUP               reload the config now (the file is also watched)
  SIGINT, SIGTERM      stop accepting, let requests in flight finish for up to
                       server.shutdown_grace, then exit 0

Endpoints:
  POST /v1/chat/completions   the proxy (stream and not)
  POST /v1/embeddings         embeddings, routed and failed over the same way
  GET  /v1/models, /v1/models/{id}
  any  other /v1/*            with [passthrough]: forwarded as it is to its provider
  GET  /healthz  /readyz  /status  /metrics   (open; never show a secret)

Config reference: README.md; the contract: DESIGN.md.";

#[derive(Parser, Debug)]
#[command(
    name = "understudy",
    version,
    about = "OpenAI-compatible proxy that fails over across LLM providers",
    long_about = "OpenAI-compatible reverse proxy: point an OpenAI SDK's base URL at it, \
and each request goes to the first usable provider of its route's priority list \
(OpenAI, Azure OpenAI, Anthropic, Gemini, Ollama, any OpenAI-compatible server), \
failing over on rate limits, errors, timeouts and outages.",
    after_long_help = AFTER_HELP
)]
struct Cli {
    /// Config file (TOML)
    #[arg(
        long,
        env = "UNDERSTUDY_CONFIG",
        default_value = "proxy.toml",
        hide_env_values = true
    )]
    config: PathBuf,
    /// Listen address, HOST:PORT (127.0.0.1:8080, localhost:8080, [::1]:8080);
    /// overrides server.listen
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Validate the config, print a one-line summary and exit: 0 valid, 1 invalid or
    /// nothing servable. Never binds the port
    #[arg(long)]
    check: bool,
    /// With --check: also call every enabled provider's cheap endpoint and say, per
    /// provider, ok / unreachable / bad key / wrong base_url (exit 1 if any fails)
    #[arg(long, requires = "check")]
    probe: bool,
    /// With --check: accept a config where no route has an enabled provider
    #[arg(long, requires = "check")]
    allow_disabled: bool,
    /// Log format on stderr
    #[arg(long, value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let env = config::process_env();
    let snapshot = match config::load(&cli.config, &env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(listen) = &cli.listen {
        if let Err(e) = config::check_listen(listen) {
            eprintln!("error: --listen {e}");
            return ExitCode::from(1);
        }
    }
    if cli.check {
        for w in snapshot.warnings() {
            eprintln!("warning: {w}");
        }
        println!("{}", snapshot.summary());
        if !snapshot.servable() && !cli.allow_disabled {
            eprintln!(
                "error: {}: no route has an enabled provider, so every request would fail; set the providers' key variables (or pass --allow-disabled to accept this)",
                snapshot.path().display()
            );
            return ExitCode::from(1);
        }
        if cli.probe {
            return probe_all(&snapshot);
        }
        return ExitCode::SUCCESS;
    }
    let listen = cli
        .listen
        .clone()
        .unwrap_or_else(|| snapshot.server.listen.clone());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(snapshot, env, listen))
}

/// `--check --probe`: one line per enabled provider; 1 if any probe failed.
fn probe_all(snapshot: &config::Snapshot) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let upstream = understudy::upstream::Upstream::new();
    let results = runtime.block_on(futures_util::future::join_all(
        snapshot.providers.iter().filter(|p| p.enabled()).map(|p| {
            let upstream = &upstream;
            async move { (p, probe::check(upstream, p).await) }
        }),
    ));
    let mut failed = false;
    for (p, result) in results {
        failed |= !result.is_ok();
        println!("probe {} ({}): {result}", p.name, p.kind.as_str());
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal: piped logs (journald, docker, files)
    // must not carry escape codes; NO_COLOR (no-color.org) turns it off anywhere.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(snapshot: config::Snapshot, env: config::EnvLookup, listen: String) -> ExitCode {
    let listener = match TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return ExitCode::from(1);
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or(listen);
    let signals = Signals::register();
    log_startup(&snapshot, &addr);
    let app = App::new(snapshot, env);
    let _watch = match watch::spawn_watcher(app.clone()) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the config file; reload with SIGHUP");
            None
        }
    };
    tokio::spawn(probe::run(app.clone()));
    #[cfg(unix)]
    let (hup, term) = (signals.hup, signals.term);
    #[cfg(not(unix))]
    let _ = signals;
    tokio::spawn(sighup(
        app.clone(),
        #[cfg(unix)]
        hup,
    ));
    let grace_app = app.clone();
    let stop = shutdown_signal(
        #[cfg(unix)]
        term,
    );
    understudy::serve(app, listener, stop, move || {
        grace_app.config.load().server.shutdown_grace
    })
    .await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

fn log_startup(s: &config::Snapshot, addr: &str) {
    let scheme = if s.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(config = %s.path.display(), "understudy listening on {scheme}://{addr}");
    for r in &s.routes {
        let list: Vec<&str> = r.targets.iter().map(|t| t.label.as_str()).collect();
        tracing::info!(
            strategy = r.strategy.as_str(),
            "route {:?} -> [{}]",
            r.model,
            list.join(", ")
        );
    }
    if let Some(pt) = &s.passthrough {
        tracing::info!(
            max_body_bytes = pt.max_body_bytes,
            "passthrough: other /v1/* paths -> {}",
            pt.provider.name
        );
    }
    for p in &s.providers {
        if let Some(proxy) = p.proxy_shown() {
            tracing::info!("provider {} reached through proxy {proxy}", p.name);
        }
    }
    for p in s.providers.iter().filter(|p| !p.enabled()) {
        tracing::warn!(
            "provider {} is disabled: {}",
            p.name,
            p.disabled_reason.as_deref().unwrap_or("")
        );
    }
    for w in s.warnings() {
        tracing::warn!("{w}");
    }
}

/// The process's signals, registered before the proxy says it is listening: a
/// supervisor that signals right after that line must find them handled.
struct Signals {
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn register() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Signals {
                hup: signal(SignalKind::hangup()).ok(),
                term: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }
}

/// SIGHUP: reload now.
async fn sighup(app: Arc<App>, #[cfg(unix)] hup: Option<tokio::signal::unix::Signal>) {
    #[cfg(unix)]
    if let Some(mut hup) = hup {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading config");
            watch::reload(&app);
        }
    }
    #[cfg(not(unix))]
    let _ = app;
}

async fn shutdown_signal(#[cfg(unix)] term: Option<tokio::signal::unix::Signal>) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match term {
            Some(mut s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}
