//! The `keepword` command: wiring only. See `keepword --help`.

use std::io::{IsTerminal, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use keepword::app::Application;
use keepword::config::{LogFormat, SecretsCheck, Settings};
use keepword::contract::Timer;
use keepword::service::LoadedContract;
use keepword::store::{self, Store};

#[derive(Parser)]
#[command(
    name = "keepword",
    version,
    about = "Holds a client-facing team to its written communication contract."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything: HTTP API and pages, metrics, background workers.
    Serve {
        /// Config file (default: config/keepword.toml when it exists).
        #[arg(long, env = "KEEPWORD_CONFIG")]
        config: Option<PathBuf>,
        /// Listen address, overriding the config's `bind`.
        #[arg(long)]
        bind: Option<std::net::SocketAddr>,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate {
        #[arg(long, env = "KEEPWORD_CONFIG")]
        config: Option<PathBuf>,
        /// Database URL, overriding the config's `database_url`.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Check, render or query a contract file.
    Contract {
        #[command(subcommand)]
        command: ContractCommand,
    },
    /// Replay a mailbox's history against a contract and report compliance
    /// (no database, no email sent).
    Backtest {
        #[arg(long)]
        contract: PathBuf,
        /// The contract in force now: replay the same mail under both and
        /// report side by side what the change would have done.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// An mbox file.
        #[arg(long, conflicts_with = "maildir", required_unless_present = "maildir")]
        mbox: Option<PathBuf>,
        /// A Maildir (cur/ and new/) or a folder of .eml files.
        #[arg(long)]
        maildir: Option<PathBuf>,
        /// The team's addresses (or @domain); their mail is the answers.
        #[arg(long = "team", value_name = "ADDRESS")]
        team: Vec<String>,
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// OAuth 2.0 credentials for IMAP and SMTP.
    Oauth {
        #[command(subcommand)]
        command: OauthCommand,
    },
    /// Erase a person (by address) or a client: bodies, raw mail, addresses
    /// and names go from every table; the anonymous SLA facts stay. Prints
    /// what it removed per table; `--dry-run` first to see it.
    Erase {
        /// The person's email address.
        #[arg(long, conflicts_with = "client", required_unless_present = "client")]
        address: Option<String>,
        /// A client id of the contract: all its conversations and everyone
        /// who wrote them.
        #[arg(long)]
        client: Option<String>,
        /// Count what would go, change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, env = "KEEPWORD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Exit 0 when the service at URL answers /healthz (for container health checks).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
}

#[derive(Subcommand)]
enum ContractCommand {
    /// Validate: exit 0 if valid, else 1 with `FILE:LINE:COL: error: …` on stderr.
    Check { file: PathBuf },
    /// The client-readable document.
    Render {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Md)]
        format: Format,
    },
    /// Print the due instant (RFC 3339, in the calendar's zone) of a timer
    /// started at `--at`.
    Due {
        file: PathBuf,
        /// Request type id.
        #[arg(long = "type")]
        request_type: String,
        /// Client id (applies the client's overrides).
        #[arg(long)]
        client: Option<String>,
        #[arg(long, default_value = "first_response")]
        timer: Timer,
        /// Start instant, RFC 3339 (e.g. 2026-11-27T16:30:00+01:00).
        #[arg(long)]
        at: String,
    },
    /// What changed from OLD to NEW, in the client's words ("no difference"
    /// when the versions agree). Exit 0 either way; 1 when a file is invalid.
    Diff { old: PathBuf, new: PathBuf },
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Text,
    Json,
    Html,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Md,
    Html,
}

#[derive(Subcommand)]
enum OauthCommand {
    /// Take a token, log in to IMAP, select the inbox and sent folder, and
    /// authenticate to SMTP without sending: each step passed or failed,
    /// with the provider's answer and the fix. Exits 1 when a step failed.
    Check {
        /// The credential: the NAME of an [oauth.NAME] table.
        name: String,
        /// Only this mailbox (its `name`); default: every mailbox using NAME.
        #[arg(long)]
        mailbox: Option<String>,
        /// Check SMTP (it is checked anyway when no --mailbox is given and
        /// [smtp] uses NAME).
        #[arg(long)]
        smtp: bool,
        #[arg(long, env = "KEEPWORD_CONFIG")]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, bind } => serve(config, bind),
        Command::Migrate {
            config,
            database_url,
        } => migrate(config, database_url),
        Command::Contract { command } => return contract(command),
        Command::Healthcheck { url } => healthcheck(&url),
        Command::Erase {
            address,
            client,
            dry_run,
            config,
        } => erase(config, address, client, dry_run),
        Command::Oauth {
            command:
                OauthCommand::Check {
                    name,
                    mailbox,
                    smtp,
                    config,
                },
        } => return oauth_check(config, &name, mailbox.as_deref(), smtp),
        Command::Backtest {
            contract,
            baseline,
            mbox,
            maildir,
            team,
            format,
        } => backtest(&contract, baseline.as_deref(), mbox, maildir, &team, format),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keepword: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn oauth_check(config: Option<PathBuf>, name: &str, mailbox: Option<&str>, smtp: bool) -> ExitCode {
    let run = || -> anyhow::Result<Vec<keepword::oauth::check::Step>> {
        let settings = Settings::load(config.as_deref())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime
            .block_on(keepword::oauth::check::run(&settings, name, mailbox, smtp))
            .map_err(|e| anyhow::anyhow!(e))
    };
    match run() {
        Ok(steps) => {
            for step in &steps {
                println!("{step}");
            }
            if steps.iter().all(|s| s.passed) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("keepword: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEEPWORD_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for people: logs piped to files or collectors stay plain.
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn serve(config: Option<PathBuf>, bind: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
    let mut settings = Settings::load(config.as_deref())?;
    if let Some(b) = bind {
        settings.bind = b;
    }
    let secrets = settings.check_secrets_for_bind();
    if let SecretsCheck::Refuse(why) = &secrets {
        bail!("{why}");
    }
    init_logging(settings.log_format);
    if let SecretsCheck::Warn(why) = &secrets {
        tracing::warn!("{why}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Installed before anything is served or announced: a SIGTERM that
        // arrives right after "serving" must stop the service gracefully,
        // not kill it with the default action.
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = (
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
            signal(SignalKind::hangup())?,
        );
        let app = Application::build(settings).await?;
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(signals(handlers, app.shutdown(), reload_tx));
        tracing::info!(port = app.port(), "keepword serving");
        app.run_until_stopped(Some(reload_rx)).await
    })
}

type Handlers = (
    tokio::signal::unix::Signal,
    tokio::signal::unix::Signal,
    tokio::signal::unix::Signal,
);

/// The one place that handles signals: SIGTERM/SIGINT stop, SIGHUP reloads
/// the contract.
async fn signals(
    (mut term, mut int, mut hup): Handlers,
    shutdown: CancellationToken,
    reload: tokio::sync::mpsc::Sender<()>,
) {
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM"); break; }
            _ = int.recv() => { tracing::info!("SIGINT"); break; }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the contract");
                let _ = reload.try_send(());
            }
        }
    }
    shutdown.cancel();
}

fn migrate(config: Option<PathBuf>, database_url: Option<String>) -> anyhow::Result<()> {
    let url = match database_url {
        Some(u) => u,
        None => Settings::load(config.as_deref())?.database_url,
    };
    let s = Store::open(&url)?;
    println!(
        "database {} is up to date ({:?})",
        store::redact_url(&url),
        s.backend()
    );
    Ok(())
}

fn erase(
    config: Option<PathBuf>,
    address: Option<String>,
    client: Option<String>,
    dry_run: bool,
) -> anyhow::Result<()> {
    use keepword::service::erasure::{self, ErasureRequest};
    let settings = Settings::load(config.as_deref())?;
    let request = match (address, client) {
        (Some(a), _) => ErasureRequest::Address(a),
        (None, Some(c)) => ErasureRequest::Client(c),
        (None, None) => bail!("give --address ADDRESS or --client ID"),
    };
    let store = Store::open(&settings.database_url)?;
    let report = erasure::erase(&store, &request, Utc::now(), dry_run)?;
    let grants = match &request {
        ErasureRequest::Address(a) => {
            keepword::oauth::store::remove_account_grants(&settings, a.trim(), dry_run)?
        }
        ErasureRequest::Client(_) => 0,
    };
    let verb = if dry_run { "would remove" } else { "removed" };
    println!(
        "{} {verb}: {} address(es), {} conversation(s) emptied of their bodies",
        if dry_run { "dry run:" } else { "erasure:" },
        report.addresses,
        report.conversations
    );
    for (table, n) in &report.counts {
        println!("  {table:<32} {n:>8} row(s)");
    }
    if grants > 0 {
        println!("  {:<32} {grants:>8} file(s)", "oauth grants");
    }
    if report.counts.is_empty() && grants == 0 {
        println!("  nothing: no table holds it");
    }
    if report.in_contracts > 0 {
        println!(
            "note: {} stored contract version(s) name it; edit the contract file (its stored \
             versions are the record of what was agreed and are not rewritten)",
            report.in_contracts
        );
    }
    if !dry_run {
        println!("recorded in `erasures` (when and how many; not whom)");
    }
    Ok(())
}

/// Loads a contract for a `contract` subcommand, or prints its errors.
/// `resolve`: resolve `env:`/`file:` targets too (`check`); reading the
/// contract (render, diff, due) does not need the alert secrets.
fn load_or_report(file: &std::path::Path, resolve: bool) -> Option<LoadedContract> {
    let loaded = if resolve {
        LoadedContract::load(file)
    } else {
        LoadedContract::load_unresolved(file)
    };
    match loaded {
        Ok(l) => Some(l),
        Err(errors) => {
            eprintln!("{errors}");
            let n = errors.0.len();
            eprintln!(
                "{}: {n} error{} found",
                file.display(),
                if n == 1 { "" } else { "s" }
            );
            None
        }
    }
}

fn contract(command: ContractCommand) -> ExitCode {
    let file = match &command {
        ContractCommand::Check { file }
        | ContractCommand::Render { file, .. }
        | ContractCommand::Due { file, .. } => file.clone(),
        ContractCommand::Diff { old, new } => {
            let (Some(old), Some(new)) = (load_or_report(old, false), load_or_report(new, false))
            else {
                return ExitCode::FAILURE;
            };
            let text = keepword::contract::diff_text(&old.contract, &new.contract);
            return match std::io::stdout().write_all(text.as_bytes()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("keepword: error: writing to stdout: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    let resolve = matches!(command, ContractCommand::Check { .. });
    let Some(loaded) = load_or_report(&file, resolve) else {
        return ExitCode::FAILURE;
    };
    let result = match command {
        ContractCommand::Check { file } => {
            for warning in loaded.warnings() {
                eprintln!("{warning}");
            }
            println!(
                "{}: ok (version {})",
                file.display(),
                loaded.contract.version_short()
            );
            Ok(())
        }
        ContractCommand::Render { format, .. } => {
            let text = match format {
                Format::Md => &loaded.markdown,
                Format::Html => &loaded.html,
            };
            std::io::stdout()
                .write_all(text.as_bytes())
                .context("writing to stdout")
        }
        ContractCommand::Due {
            request_type,
            client,
            timer,
            at,
            ..
        } => due(&loaded, &request_type, client.as_deref(), timer, &at),
        ContractCommand::Diff { .. } => unreachable!("answered above"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keepword: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn due(
    loaded: &LoadedContract,
    request_type: &str,
    client: Option<&str>,
    timer: Timer,
    at: &str,
) -> anyhow::Result<()> {
    let at: DateTime<Utc> = DateTime::parse_from_rfc3339(at)
        .with_context(|| {
            format!("--at `{at}` is not an RFC 3339 instant (e.g. 2026-11-27T16:30:00+01:00)")
        })?
        .with_timezone(&Utc);
    let due = loaded
        .contract
        .due(request_type, client, timer, at)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", due.to_rfc3339_opts(SecondsFormat::AutoSi, false));
    Ok(())
}

fn backtest(
    contract: &std::path::Path,
    baseline: Option<&std::path::Path>,
    mbox: Option<PathBuf>,
    maildir: Option<PathBuf>,
    team: &[String],
    format: ReportFormat,
) -> anyhow::Result<()> {
    use keepword::backtest::{self, Source};
    // A backtest sends nothing: the alert secrets are not needed.
    let loaded = LoadedContract::load_unresolved(contract).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Both files are checked before any mail is read.
    let baseline = baseline
        .map(|b| LoadedContract::load_unresolved(b).map_err(|e| anyhow::anyhow!("{e}")))
        .transpose()?;
    let sources: Vec<Source> = mbox
        .map(Source::Mbox)
        .into_iter()
        .chain(maildir.map(Source::Maildir))
        .collect();
    let terminal = std::io::stderr().is_terminal();
    let report = backtest::run(&loaded.contract, &sources, team, |done, total| {
        // A progress line only for people watching; logs stay clean.
        if terminal {
            if total > 0 {
                eprint!("\rread {done}/{total} messages");
            } else {
                eprint!("\rread {done} messages");
            }
        }
    })?;
    if terminal {
        eprintln!("\r{:60}", "");
    }
    if let Some(old) = baseline {
        // The same mail again: each contract routes and classifies it itself.
        let old_report = backtest::run(&old.contract, &sources, team, |_, _| {})?;
        let comparison = backtest::compare::compare(report, old_report);
        let out = match format {
            ReportFormat::Text => backtest::compare::render_text(&comparison),
            ReportFormat::Json => serde_json::to_string_pretty(&comparison)? + "\n",
            ReportFormat::Html => backtest::compare::render_html(&comparison),
        };
        std::io::stdout().write_all(out.as_bytes())?;
        return Ok(());
    }
    let out = match format {
        ReportFormat::Text => backtest::render_text(&report),
        ReportFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        ReportFormat::Html => backtest::render_html(&report),
    };
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(())
}

/// A dependency-free GET so the runtime image needs no curl.
fn healthcheck(url: &str) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("http://")
        .context("--url must be an http:// URL")?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/healthz"),
    };
    let addr = hostport
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {hostport}"))?
        .next()
        .with_context(|| format!("{hostport} has no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        println!("{status}");
        Ok(())
    } else {
        bail!("unhealthy: {status}")
    }
}
