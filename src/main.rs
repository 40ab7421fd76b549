//! The `belroute` command: serve, check and test rule sets.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use belroute::app::{self, Belroute};
use belroute::cli;
use belroute::server::{self, ServerOptions};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

/// Call-routing rules engine for Callvoip's Webhook-app.
#[derive(Debug, Parser)]
#[command(name = "belroute", version, about)]
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
    Check(RulesArgs),
    /// Run the rule tests (rules/{name}.test.yaml and `tests:` sections) without any CRM.
    Test(TestArgs),
    /// Create or update belroute's database tables, then exit (serve does this too).
    Migrate(DatabaseArgs),
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
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
            ExitCode::from(2)
        }
    }
}

async fn run(command: Command) -> anyhow::Result<bool> {
    match command {
        Command::Serve(args) => {
            let (config, config_file) = cli::load_config(args.rules.config.as_deref())?;
            if let Some(file) = &config_file {
                tracing::info!("configuration from {}", file.display());
            }
            let belroute = Belroute::open(config, &args.rules.rules, &args.database.url()).await?;
            let _watcher = belroute_engine::watch::watch(belroute.store.clone())
                .context("cannot watch the rules directory")?;
            let options = ServerOptions {
                listen: args.listen,
                workers: args.workers,
                ..ServerOptions::default()
            };
            let running = server::start(&belroute, &options).await?;
            running.run_until_signal().await?;
            belroute.shutdown().await;
            Ok(true)
        }
        Command::Check(args) => {
            let config = cli::load_config_for_check(args.config.as_deref())?;
            let router = app::offline_router(&config);
            let mut out = String::new();
            let ok = cli::check(&args.rules, &router, &config, &mut out)?;
            print!("{out}");
            Ok(ok)
        }
        Command::Migrate(args) => {
            let storage = belroute::storage::Storage::open(&args.url())?;
            storage.migrate().await.context("migration failed")?;
            println!("{} database is up to date", storage.kind());
            Ok(true)
        }
        Command::Test(args) => {
            let config = cli::load_config_for_check(args.rules.config.as_deref())?;
            let router = app::offline_router(&config);
            let mut out = String::new();
            let ok = cli::test(&args.rules.rules, &router, &config, &args.names, &mut out).await?;
            print!("{out}");
            Ok(ok)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("BELROUTE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
