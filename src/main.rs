//! The `belroute` command: serve, check and test rule sets.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use belroute::app::{self, Belroute};
use belroute::cli;
use belroute::read::simulate;
use belroute::server::{self, ServerOptions};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

/// The version with the git revision it was built from (`unknown` outside a git checkout).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("BELROUTE_REVISION"),
    ")"
);

/// Call-routing rules engine for Callvoip's Webhook-app.
///
/// belroute answers the Webhook-app in a Callvoip belplan: Callvoip sends the call data to
/// /hooks/RULESET, belroute runs the rules in rules/RULESET.yaml (YAML with short Rhai
/// expressions, CRM lookups through plugins) and answers a short route text before the
/// Webhook-app's Request Timeout. A saved rule file goes live within a second; a broken one is
/// refused and the last good version keeps serving.
#[derive(Debug, Parser)]
#[command(
    name = "belroute",
    version = VERSION,
    about,
    long_about,
    after_long_help = cli::manual::help_text()
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format.
    #[arg(long, global = true, env = "BELROUTE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve /hooks/{ruleset} for Callvoip, reloading rule files as they are saved.
    Serve(ServeArgs),
    /// Validate every rule file and test file; print each problem as file:line:col.
    Check(CheckArgs),
    /// Run the rule tests (rules/{name}.test.yaml and `tests:` sections) without any CRM.
    Test(TestArgs),
    /// Create or update belroute's database tables, then exit (serve does this too).
    Migrate(DatabaseArgs),
    /// Write a starter belroute.yaml, rules/main.yaml with its tests, and a .gitignore.
    Init(InitArgs),
    /// Decide one call without Callvoip and show why: every rule and every lookup.
    Simulate(SimulateArgs),
    /// Decide logged calls again with the rule files as they are now: which would route
    /// differently, before you save a change. Reads the call log only.
    Replay(ReplayArgs),
    /// Rule sets in the database, for several instances (`rules.source: database`).
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Print a shell completion script: `belroute completions bash > /etc/bash_completion.d/belroute`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// A rule worker process, started by `serve` (and the other commands) itself.
    #[command(hide = true)]
    Worker {
        /// Its settings, as JSON.
        spec: String,
    },
    /// Write the man pages (belroute.1 and belroute-COMMAND.1) into DIR, for packaging.
    #[command(hide = true)]
    Manpages {
        /// Directory to write into (it must exist).
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Check and test DIR, then publish every rule file that changed to the database every
    /// instance with `rules.source: database` serves from (for git and CI). Nothing is pushed
    /// when a check or a test fails.
    Push(PushArgs),
}

#[derive(Debug, Args)]
struct PushArgs {
    /// The directory of rule files (and their tests) to publish.
    dir: PathBuf,
    /// Server configuration (plugins and their facts, calendars); ./belroute.yaml is read
    /// when present.
    #[arg(long, env = "BELROUTE_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    database: DatabaseArgs,
    /// Also remove the published rule sets that have no file in DIR.
    #[arg(long)]
    prune: bool,
    /// A note for each revision's history, e.g. the commit ("pushed from DIR" when not given).
    #[arg(long, default_value = "")]
    note: String,
}

#[derive(Debug, Args)]
struct SimulateArgs {
    #[command(flatten)]
    rules: RulesArgs,
    /// The rule set (file stem) to ask.
    ruleset: String,
    /// The caller's number, as Callvoip sends it (31152026057) or any other way.
    #[arg(long)]
    caller: Option<String>,
    /// A JSON file of call data (e.g. tests/fixtures/callvoip/post-example.json).
    #[arg(long)]
    call: Option<PathBuf>,
    /// A call field, FIELD=VALUE; may be repeated.
    #[arg(long = "field", value_name = "FIELD=VALUE")]
    fields: Vec<String>,
    /// Local time in the rule set's zone: "2026-11-23 10:00" (default: now).
    #[arg(long)]
    at: Option<String>,
    /// What a lookup answers, NAME={json}, NAME=not-found or NAME=unavailable; may be
    /// repeated. With any of these (or --offline) no plugin is asked.
    #[arg(long = "facts", value_name = "NAME=FACTS")]
    facts: Vec<String>,
    /// Ask no plugin: lookups without --facts are unavailable.
    #[arg(long)]
    offline: bool,
    /// Print the decision record as JSON (as the call log stores it).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    database: DatabaseArgs,
}

#[derive(Debug, Args)]
struct ReplayArgs {
    #[command(flatten)]
    rules: RulesArgs,
    #[command(flatten)]
    database: DatabaseArgs,
    /// Calls received this long back from now: 30m, 24h, 7d [default: 24h].
    #[arg(long, conflicts_with_all = ["from", "to"])]
    since: Option<String>,
    /// Calls received from this time: "2026-11-23 09:00" (local, in the configured time zone)
    /// or RFC 3339.
    #[arg(long)]
    from: Option<String>,
    /// Calls received before this time [default: now].
    #[arg(long)]
    to: Option<String>,
    /// Show one logged call in full, then and now side by side.
    #[arg(long, value_name = "UUID")]
    call: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Exit 1 when any call would route differently (for CI and pre-commit hooks).
    #[arg(long)]
    fail_on_change: bool,
    /// Logged calls read at once (memory stays bounded by this).
    #[arg(long, default_value_t = belroute::replay::PAGE_SIZE, hide = true)]
    page_size: usize,
    /// Only these rule sets (default: every rule set in the log).
    rulesets: Vec<String>,
}

#[derive(Debug, Args)]
struct RulesArgs {
    /// Directory of rule sets: rules/{name}.yaml serves /hooks/{name}.
    #[arg(long, env = "BELROUTE_RULES", default_value = "./rules")]
    rules: PathBuf,
    /// Server configuration; ./belroute.yaml is read when present.
    #[arg(long, env = "BELROUTE_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    rules: RulesArgs,
    /// Address to listen on.
    #[arg(long, env = "BELROUTE_LISTEN", default_value = "0.0.0.0:8080")]
    listen: String,
    /// Call log database: sqlite://FILE or postgres://…
    #[command(flatten)]
    database: DatabaseArgs,
    /// Worker threads (default: one per CPU).
    #[arg(long, env = "BELROUTE_WORKERS")]
    workers: Option<usize>,
}

#[derive(Debug, Args)]
struct DatabaseArgs {
    /// belroute's own database (call log): sqlite://FILE or postgres://…
    /// [default: $DATABASE_URL, else sqlite://belroute.db]
    #[arg(long, env = "BELROUTE_DATABASE")]
    database: Option<String>,
}

impl DatabaseArgs {
    fn url(&self) -> String {
        self.database
            .clone()
            .or_else(|| std::env::var("DATABASE_URL").ok())
            .unwrap_or_else(|| "sqlite://belroute.db".into())
    }
}

#[derive(Debug, Args)]
struct TestArgs {
    #[command(flatten)]
    rules: RulesArgs,
    /// Only these rule sets.
    names: Vec<String>,
    /// Output: text for people, json, or junit (JUnit XML for CI test reports).
    #[arg(long, value_enum, default_value_t = cli::report::Format::Text)]
    format: cli::report::Format,
}

#[derive(Debug, Args)]
struct CheckArgs {
    #[command(flatten)]
    rules: RulesArgs,
    /// Also ask each sql and http plugin's source what it answers, and compare it with the
    /// plugin's declared `facts:` (the database prepares the query; the API is asked about
    /// --probe-caller). Needs the plugins' secrets in the environment.
    #[arg(long)]
    probe: bool,
    /// The caller an http plugin is asked about when probing.
    #[arg(long, default_value = "31152026057", requires = "probe")]
    probe_caller: String,
    /// Output: text for people, or json for CI.
    #[arg(long, value_enum, default_value_t = cli::report::CheckFormat::Text)]
    format: cli::report::CheckFormat,
}

#[derive(Debug, Args)]
struct InitArgs {
    /// Directory to write into (created when missing).
    #[arg(default_value = ".")]
    dir: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A worker confines itself before anything else runs: no logging, no async runtime.
    if let Command::Worker { spec } = &cli.command {
        return belroute_engine::sandbox::worker::main(spec);
    }
    if let Command::Completions { shell } = cli.command {
        use clap::CommandFactory;
        use std::io::Write;
        // Into a buffer first: clap_complete panics on a closed pipe (`| head`).
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "belroute", &mut script);
        return match std::io::stdout().write_all(&script) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    }
    if let Command::Manpages { dir } = &cli.command {
        use clap::CommandFactory;
        return match cli::manual::write_manpages(Cli::command(), dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!(
                    "error: cannot write the man pages into {}: {e}",
                    dir.display()
                );
                ExitCode::from(2)
            }
        };
    }
    // Flushes the log when main returns.
    let _log = init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            // A rule set that does not exist is a finding like a failed test (1), not a
            // malformed command line (2).
            if e.downcast_ref::<cli::UnknownRuleSet>().is_some()
                || e.downcast_ref::<cli::init::Refused>().is_some()
            {
                ExitCode::FAILURE
            } else {
                ExitCode::from(2)
            }
        }
    }
}

/// One start-up line per plugin and subscription, so the log says what this instance will do.
fn say_what_is_configured(config: &belroute::config::Config) {
    for plugin in &config.lookups {
        tracing::info!(
            plugin = %plugin.name,
            kind = plugin.config.kind(),
            timeout = %humantime::format_duration(plugin.settings.timeout),
            "plugin configured"
        );
    }
    for (name, subscription) in &config.subscriptions {
        let events: Vec<&str> = subscription.events.iter().map(|e| e.as_str()).collect();
        tracing::info!(
            subscription = %name,
            endpoint = %subscription.endpoint.as_ref().map_or("(none: the subscriber polls)", |e| e.written()),
            events = %events.join(", "),
            status = %subscription.status.as_str(),
            "subscription configured"
        );
    }
    if config.admin.token.is_none() {
        tracing::info!("admin API and console off (set admin.token to turn them on)");
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
}

/// SIGHUP (systemd's `ExecReload`) rescans the rules directory at once, as the watcher would:
/// for file systems that do not report changes, and for operators used to `reload`.
///
/// The handler is installed before this returns, so before the server says it listens: a
/// SIGHUP that comes right after start rescans instead of ending the process (SIGHUP's default).
fn rescan_on_hangup(store: std::sync::Arc<belroute_engine::RuleStore>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; rule files are still reloaded when saved");
            return;
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let store = store.clone();
                match tokio::task::spawn_blocking(move || store.rescan()).await {
                    Ok(summary) => tracing::info!(
                        loaded = %listed(&summary.loaded),
                        refused = %listed(&summary.refused),
                        removed = %listed(&summary.removed),
                        "SIGHUP: rules directory rescanned"
                    ),
                    Err(e) => tracing::error!("SIGHUP: rescanning the rules directory failed: {e}"),
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = store;
}

/// The SQLite file `serve` is about to create, if it is about to create one: a start that
/// fails before the server listens (no rules directory, the port in use) removes it again, so
/// a failed start leaves no empty database behind.
struct NewDatabaseFile(Option<PathBuf>, Option<PathBuf>);

impl NewDatabaseFile {
    /// `spill_lock`: the call log's lock beside its spill file, removed too if it is new.
    fn before_start(database: &str, spill_lock: PathBuf) -> Self {
        NewDatabaseFile(
            database
                .parse::<belroute::storage::DatabaseUrl>()
                .ok()
                .and_then(|url| url.sqlite_file().map(std::path::Path::to_path_buf))
                .filter(|f| !f.exists()),
            Some(spill_lock).filter(|f| !f.exists()),
        )
    }

    fn remove(&self) {
        if let Some(lock) = &self.1 {
            let _ = std::fs::remove_file(lock);
        }
        let Some(file) = &self.0 else { return };
        for suffix in ["", "-wal", "-shm"] {
            let mut path = file.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Names for a log field: `main, support`, or `none`.
fn listed(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(",")
    }
}

async fn run(command: Command) -> anyhow::Result<bool> {
    match command {
        Command::Completions { .. } | Command::Manpages { .. } | Command::Worker { .. } => Ok(true),
        Command::Serve(args) => {
            let (config, config_file) = cli::load_config(args.rules.config.as_deref())?;
            match &config_file {
                Some(file) => tracing::info!("configuration from {}", file.display()),
                None => tracing::info!(
                    "no belroute.yaml here and no --config: built-in defaults (no plugins, no admin API, no subscriptions); `belroute init` writes a commented one"
                ),
            }
            say_what_is_configured(&config);
            // Before anything opens files: connections, the call log and plugins share them.
            server::limits::raise_file_limit();
            let worker = belroute_engine::WorkerCommand::this_binary()
                .context("cannot find this program to start rule workers")?;
            let database = args.database.url();
            let spill_lock = config.storage.writer(&database).lock_file();
            let new_file = NewDatabaseFile::before_start(&database, spill_lock);
            let belroute = match Belroute::open(config, &args.rules.rules, &database, worker).await
            {
                Ok(belroute) => belroute,
                Err(e) => {
                    new_file.remove();
                    return Err(e);
                }
            };
            let options = ServerOptions {
                listen: args.listen,
                workers: args.workers,
                ..ServerOptions::default()
            };
            let started = async {
                let watcher = belroute_engine::watch::watch(belroute.store.clone())
                    .context("cannot watch the rules directory")?;
                rescan_on_hangup(belroute.store.clone());
                let running = server::start(&belroute, &options).await?;
                anyhow::Ok((watcher, running))
            }
            .await;
            let (_watcher, running) = match started {
                Ok(started) => started,
                Err(e) => {
                    belroute.shutdown().await;
                    new_file.remove();
                    return Err(e);
                }
            };
            if let Some(file) = &belroute.config.file {
                file.watch();
            }
            running.run_until_signal(&belroute).await?;
            belroute.shutdown().await;
            Ok(true)
        }
        Command::Check(args) => {
            let config = cli::load_config_for_check(args.rules.config.as_deref())?;
            let router = app::offline_router(&config)?;
            let mut out = String::new();
            let probes = if args.probe {
                cli::probe(&config, &router, &args.probe_caller).await
            } else {
                Vec::new()
            };
            let probed_ok = probes.iter().all(|p| p.problems.is_empty());
            let ok = match args.format {
                cli::report::CheckFormat::Text => {
                    let ok = cli::check(&args.rules.rules, &router, &config, &mut out)?;
                    for probe in &probes {
                        for note in &probe.notes {
                            out.push_str(&format!("note: {note}\n"));
                        }
                        for problem in &probe.problems {
                            out.push_str(&format!("{problem}\n"));
                        }
                    }
                    if !probed_ok {
                        out.push_str("the plugins' sources answer other facts than they declare\n");
                    }
                    ok
                }
                cli::report::CheckFormat::Json => {
                    let report = cli::report::check_report(&args.rules.rules, &router, &config)?;
                    let ok = report.ok;
                    let mut value = serde_json::to_value(&report)?;
                    if args.probe {
                        value["probe"] =
                            serde_json::json!(probes
                            .iter()
                            .map(|p| serde_json::json!({
                                "plugin": p.plugin, "problems": p.problems, "notes": p.notes,
                            }))
                            .collect::<Vec<_>>());
                        value["ok"] = serde_json::json!(ok && probed_ok);
                    }
                    out = serde_json::to_string_pretty(&value)? + "\n";
                    ok
                }
            };
            print!("{out}");
            Ok(ok && probed_ok)
        }
        Command::Init(args) => {
            print!("{}", cli::init::init(&args.dir)?);
            Ok(true)
        }
        Command::Simulate(args) => simulate(args).await,
        Command::Replay(args) => {
            let config = cli::load_config_for_check(args.rules.config.as_deref())?;
            let router = app::offline_router(&config)?;
            let storage = belroute::storage::Storage::open_read_only(&args.database.url())?;
            let request = cli::replay::ReplayRequest {
                rulesets: args.rulesets,
                since: args.since,
                from: args.from,
                to: args.to,
                call: args.call,
                json: args.json,
                fail_on_change: args.fail_on_change,
                page_size: args.page_size,
            };
            let mut out = String::new();
            let result = cli::replay::replay(
                &args.rules.rules,
                &router,
                &config,
                &storage,
                &request,
                &mut out,
            )
            .await;
            storage.close().await;
            print!("{out}");
            result
        }
        Command::Rules(RulesCommand::Push(args)) => {
            let config = cli::load_config_for_check(args.config.as_deref())?;
            let router = app::offline_router(&config)?;
            let mut out = String::new();
            let url = args.database.url();
            let push = cli::push::Push {
                dir: &args.dir,
                database: &url,
                prune: args.prune,
                note: &args.note,
            };
            let ok = cli::push::push(&push, &router, &config, &mut out).await?;
            print!("{out}");
            Ok(ok)
        }
        Command::Migrate(args) => {
            let (storage, migrated) = cli::migrate::migrate(&args.url()).await?;
            println!("{} database: {migrated}", storage.kind());
            Ok(true)
        }
        Command::Test(args) => {
            let config = cli::load_config_for_check(args.rules.config.as_deref())?;
            let router = app::offline_router(&config)?;
            let mut out = String::new();
            let ok = cli::test_as(
                &args.rules.rules,
                &router,
                &config,
                &args.names,
                args.format,
                &mut out,
            )
            .await?;
            print!("{out}");
            Ok(ok)
        }
    }
}

/// The log filter unless BELROUTE_LOG or RUST_LOG says otherwise. actix-http logs malformed
/// requests from anyone at ERROR; they are counted nowhere useful and would let any client
/// flood the log, so they are off by default (`BELROUTE_LOG=info,actix_http=debug` shows them).
///
/// PostgreSQL's notices (`relation "_sqlx_migrations" already exists, skipping` on every
/// start) are at INFO and say nothing an operator can act on; its warnings still show.
pub const DEFAULT_LOG_FILTER: &str = "info,actix_http::h1=off,sqlx::postgres::notice=warn";

/// Log lines are formatted where they happen and written to stderr by a thread of their own,
/// so a call's answer never waits for the terminal or the journal. Nothing is dropped: when that
/// thread falls 64k lines behind, the next line waits.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = EnvFilter::try_from_env("BELROUTE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(65_536)
        .thread_name("belroute-log")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    match format {
        // Every value escaped: a rule-set name in a URL or a caller's field cannot start a new
        // log line or move the terminal's cursor.
        LogFormat::Text => builder
            .fmt_fields(belroute::logging::escaped_fields())
            .init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    guard
}

async fn simulate(args: SimulateArgs) -> anyhow::Result<bool> {
    let mut call = match &args.call {
        Some(file) => {
            let body =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            belroute_engine::Call::from_json(&body)
                .with_context(|| format!("{}", file.display()))?
        }
        None => belroute_engine::Call::default(),
    };
    let mut fields = Vec::new();
    for field in &args.fields {
        fields.push(
            simulate::field(field).map_err(|e| anyhow::anyhow!("`--field {field}`: {}", e.fix))?,
        );
    }
    if let Some(caller) = &args.caller {
        fields.push(("caller_number".into(), caller.clone()));
    }
    let mut given = belroute_engine::Call::from_pairs(fields);
    given.merge_missing(call);
    call = given;
    let at = match &args.at {
        Some(text) => Some(
            simulate::local_time(text).map_err(|e| anyhow::anyhow!("`--at {text}`: {}", e.fix))?,
        ),
        None => None,
    };
    let offline = args.offline || !args.facts.is_empty();
    let facts = if offline {
        Some(
            args.facts
                .iter()
                .map(|f| {
                    simulate::facts(f)
                        .map_err(|e| anyhow::anyhow!("`--facts {}`: {}", e.text, e.fix))
                })
                .collect::<anyhow::Result<_>>()?,
        )
    } else {
        None
    };
    // simulate never uses the admin API or the subscriptions: their secrets may be unset, as
    // for check and test (a lookup that needs one says so when it is asked). Notes go to
    // stderr, so that --json stays one JSON document.
    let config = cli::load_config_for_check(args.rules.config.as_deref())?;
    for note in &config.notes {
        eprintln!("note: {note}");
    }
    // Read-only: simulate creates no database and writes nothing to one.
    let router = if offline {
        app::offline_router(&config)?
    } else {
        let (storage, note) =
            belroute::storage::Storage::open_for_lookups(&args.database.url()).await?;
        let reads_history = config
            .lookups
            .iter()
            .any(|plugin| plugin.config.kind() == "history");
        if let Some(note) = note.filter(|_| reads_history) {
            eprintln!("note: {note}");
        }
        let worker = belroute_engine::WorkerCommand::this_binary()
            .context("cannot find this program to start rule workers")?;
        app::router(&config, std::sync::Arc::new(storage), worker, false)?
    };
    let simulation = simulate::Simulation { call, at, facts };
    let mut out = String::new();
    let ok = cli::simulate(
        &args.rules.rules,
        &router,
        &config,
        &args.ruleset,
        simulation,
        args.json,
        &mut out,
    )
    .await?;
    print!("{out}");
    Ok(ok)
}
