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
    /// The client's own page (its record, pulled by link).
    Client {
        #[command(subcommand)]
        command: ClientCommand,
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
    /// A contract with a `slack` channel is checked against the service
    /// config too (`--config`, else the default one): it needs `[slack]`.
    Check {
        file: PathBuf,
        #[arg(long, env = "KEEPWORD_CONFIG")]
        config: Option<PathBuf>,
    },
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

#[derive(Subcommand)]
enum ClientCommand {
    /// Print a new link to the client's page ({public_url}/clients/{token});
    /// every older link of the client stops working.
    Link {
        /// The client's id in the contract.
        id: String,
        #[arg(long, env = "KEEPWORD_CONFIG")]
        config: Option<PathBuf>,
    },
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
    /// Sign a person in with the device flow: prints a URL and a code to
    /// enter there (on any device), waits until they have signed in, and
    /// stores the grant encrypted, as the Connections page's Sign in does.
    /// A running service picks it up within seconds.
    Login {
        /// The credential: the NAME of an [oauth.NAME] table with grant
        /// `delegated`.
        name: String,
        /// The mailbox the person signs in as (its `username`).
        #[arg(long)]
        account: String,
        #[arg(long, env = "KEEPWORD_CONFIG")]
        config: Option<PathBuf>,
    },
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
    // Fault tests build with the `failpoints` feature and set FAILPOINTS
    // (`outbox-after-send=sleep(5000)`); without the feature this is nothing.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let code = run(Cli::parse());
    // A pool thread may be opening a PostgreSQL connection as the command
    // returns; the libraries libpq uses tear themselves down at exit and
    // crashed it (keepword::store::before_exit says how): let it finish.
    if !keepword::store::before_exit(Duration::from_secs(5)) {
        eprintln!("keepword: a database connection was still opening as the process ended");
    }
    code
}

fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve { config, bind } => serve(config, bind),
        Command::Migrate {
            config,
            database_url,
        } => migrate(config, database_url),
        Command::Contract { command } => return contract(command),
        Command::Client {
            command: ClientCommand::Link { id, config },
        } => client_link(config, &id),
        Command::Healthcheck { url } => healthcheck(&url),
        Command::Erase {
            address,
            client,
            dry_run,
            config,
        } => erase(config, address, client, dry_run),
        Command::Oauth {
            command:
                OauthCommand::Login {
                    name,
                    account,
                    config,
                },
        } => oauth_login(config, &name, &account),
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

fn oauth_login(config: Option<PathBuf>, name: &str, account: &str) -> anyhow::Result<()> {
    let settings = Settings::load(config.as_deref())?;
    if !settings.oauth.contains_key(name) {
        bail!(
            "no [oauth.{name}] credential in the config (configured: {})",
            settings
                .oauth
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let tokens = keepword::oauth::check::token_source(&settings).map_err(|e| anyhow::anyhow!(e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let token = runtime
        .block_on(tokens.device_sign_in(name, account, |code| {
            println!("To sign {account} in to keepword, open");
            println!("    {}", code.verification_uri);
            println!("and enter the code");
            println!("    {}", code.user_code);
            if let Some(complete) = &code.verification_uri_complete {
                println!("(or open {complete})");
            }
            println!(
                "as {account}. Waiting up to {} minutes…",
                code.expires_in.div_ceil(60)
            );
            let _ = std::io::Write::flush(&mut std::io::stdout());
        }))
        .map_err(|e| match e.fix() {
            Some(fix) => anyhow::anyhow!("{e}\n  fix: {fix}"),
            None => anyhow::anyhow!(e),
        })?;
    let until: chrono::DateTime<chrono::Utc> = token.expires_at.into();
    println!(
        "Signed in: {account} under [oauth.{name}]; the grant is stored encrypted and a running \
         keepword uses it within seconds (this token is valid until {}).",
        until.format("%Y-%m-%d %H:%M UTC")
    );
    Ok(())
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

fn client_link(config: Option<PathBuf>, id: &str) -> anyhow::Result<()> {
    let settings = Settings::load(config.as_deref())?;
    // Reading the contract to know its clients; no alert is sent from here.
    let loaded = LoadedContract::load_unresolved(&settings.contract)
        .map_err(|e| anyhow::anyhow!("{}: {e}", settings.contract.display()))?;
    let store = Store::open(&settings.database_url)?;
    let link = keepword::service::new_client_link(
        &store,
        &loaded.contract,
        settings.public_url.as_str(),
        id,
        keepword::clock::Clock::system().now(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{link}");
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
        ContractCommand::Check { file, .. }
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
        ContractCommand::Check { file, config } => {
            for warning in loaded.warnings() {
                eprintln!("{warning}");
            }
            if let Err(why) = check_slack_config(&loaded.contract, config.as_deref()) {
                eprintln!("{}: error: {why}", file.display());
                eprintln!("{}: 1 error found", file.display());
                return ExitCode::FAILURE;
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

/// A `slack` channel is fed by `[slack]` in the service config: without it
/// Slack's requests are refused and nothing is acknowledged. Only read when
/// the contract has one (or a config is named).
fn check_slack_config(
    contract: &keepword::contract::Contract,
    config: Option<&std::path::Path>,
) -> Result<(), String> {
    use keepword::contract::ChannelKind;
    let slack: Vec<&str> = contract
        .channels()
        .iter()
        .filter(|c| c.kind == ChannelKind::Slack)
        .map(|c| c.id.as_str())
        .collect();
    if slack.is_empty() && config.is_none() {
        return Ok(());
    }
    let settings = Settings::load(config).map_err(|e| format!("the service config: {e}"))?;
    let shown = config
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "config/keepword.toml".into());
    match (&settings.slack, slack.first()) {
        (None, Some(channel)) => Err(format!(
            "channel \"{channel}\" is kind = \"slack\", but the config ({shown}) has no [slack] \
             section: add [slack] with signing_secret, bot_token and team_ids (README, \"Slack\")"
        )),
        (Some(s), _) => match s.channel.as_deref() {
            Some(c) if !slack.contains(&c) => Err(format!(
                "[slack] channel = \"{c}\" in {shown}, but the contract has no slack channel \"{c}\" \
                 (its slack channels: {})",
                if slack.is_empty() {
                    "none".to_string()
                } else {
                    slack.join(", ")
                }
            )),
            None if slack.is_empty() => Err(format!(
                "{shown} has [slack], but the contract has no channel with kind = \"slack\": add \
                 [channels.slack] kind = \"slack\""
            )),
            _ => Ok(()),
        },
        (None, None) => Ok(()),
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
