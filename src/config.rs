//! `belroute.yaml`: the server's own settings (not the rules): hooks authentication,
//! time zone, sandbox limits, storage, plugins, subscriptions, admin. Secrets come from the
//! environment as `${NAME}`.
//!
//! Read like rule files: into the engine's positioned YAML tree, with the engine's settings
//! toolkit, so every problem is reported at once as `file:line:col: message`, and every
//! duration, size and count is checked against a documented range (docs/operators.md): no
//! value `check` accepts can crash or overflow anything once belroute serves.

pub mod on_disk;
mod subscription;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use belroute_engine::Normaliser;
use belroute_engine::diagnostic::{Diagnostic, Diagnostics, Position};
use belroute_engine::settings::SandboxSettings;
use belroute_engine::settings::{self, Invalid, Range, Secret, Section, value};
use belroute_engine::yaml::{self, Node};
use belroute_engine::{DEFAULT_TIME_ZONE, parse_time_zone};
use belroute_plugins::PluginInstance;
use chrono_tz::Tz;
use ipnet::IpNet;

pub use subscription::{Channel, EventKind, Payload, Status, SubscriptionConfig};

/// The whole configuration file. Every key is optional.
#[derive(Debug, Default)]
pub struct Config {
    /// Zone for `now()`, office hours and holidays, unless a rule set names its own.
    pub timezone: TimeZone,
    /// Region for numbers written nationally (`0152026057`): an ISO code.
    pub default_region: Region,
    pub hooks: Hooks,
    /// Bounds on what one rule may do.
    pub sandbox: SandboxSettings,
    /// What a new rule file version must pass to go live.
    pub reload: Reload,
    /// Where rule sets come from: the rules directory, or the database shared by instances.
    pub rules: RulesSettings,
    pub admin: Admin,
    pub storage: StorageSettings,
    /// Applications told where calls went (see docs/subscriptions.md).
    pub subscriptions: BTreeMap<String, SubscriptionConfig>,
    /// The plugin instances, validated.
    pub lookups: Vec<PluginInstance>,
    /// Notes for `belroute check` about settings it could not check.
    pub notes: Vec<String>,
    /// Settings that work but are risky (a guessable `admin.token`): `check` prints them,
    /// `serve` logs them.
    pub warnings: Vec<String>,
    /// The file this was read from (`None`: built-in defaults, or parsed from text).
    pub file: Option<std::sync::Arc<on_disk::ConfigFile>>,
    /// Every name under `plugins:`, including any `check` could not fully validate.
    plugin_names: BTreeSet<String>,
    /// What each plugin declares it answers, read even where a secret is missing (`check`).
    plugin_facts: belroute_engine::LookupFacts,
    /// Company calendars, by name: days off rule sets include with `calendar: include:`.
    pub calendars: belroute_engine::calendar::Calendars,
}

/// `hooks:` — the Callvoip-facing endpoint.
#[derive(Debug)]
pub struct Hooks {
    /// Answer this long before the rule set's `timeout`, for the network back to Callvoip.
    pub margin: Duration,
    /// Largest request body accepted.
    pub max_body: ByteSize,
    pub auth: Auth,
    /// Per rule set settings; an `auth` here replaces the server-wide one for that set.
    pub rulesets: BTreeMap<String, RulesetHooks>,
    /// How many connections belroute keeps open and how long a client may take (every
    /// endpoint shares them).
    pub connections: Connections,
    /// After SIGTERM, how long `/healthz` and `/readyz` answer `503 draining` before the server
    /// stops accepting connections: long enough for a load balancer's health check to notice.
    pub drain: Duration,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            margin: Duration::from_millis(250),
            max_body: ByteSize(64 * 1024),
            auth: Auth::default(),
            rulesets: BTreeMap::new(),
            connections: Connections::default(),
            drain: Duration::ZERO,
        }
    }
}

impl Hooks {
    pub const KEYS: [&'static str; 6] = [
        "margin",
        "max_body",
        "auth",
        "rulesets",
        "connections",
        "drain",
    ];
    pub const DRAIN: Range<Duration> = Range::new(Duration::ZERO, Duration::from_secs(60));
    pub const MARGIN: Range<Duration> = Range::new(
        Duration::ZERO,
        belroute_engine::MIN_TIMEOUT.saturating_sub(Duration::from_millis(1)),
    )
    .because("below 1s, the shortest rule set timeout");
    /// A Callvoip call is under 2 KiB; the limit is read before the body is.
    pub const MAX_BODY: Range<u64> = Range::new(1 << 10, 4 << 20);

    fn read(s: &mut Section<'_, '_, '_>) -> Self {
        let default = Hooks::default();
        let max_body = s.size("max_body", 64 * 1024, Self::MAX_BODY);
        let mut rulesets = BTreeMap::new();
        for (name, key, node) in s.entries("rulesets") {
            if !belroute_engine::valid_name(name) {
                s.error_at(
                    key.position,
                    format!("`hooks.rulesets.{name}`: no rule set can have this name; rule set names (file names) use letters, digits, `-` and `_`"),
                );
            }
            let path = format!("hooks.rulesets.{name}");
            let hooks = s.nested(node, &path, &["auth"], |r| RulesetHooks {
                auth: r
                    .contains("auth")
                    .then(|| r.section("auth", &Auth::KEYS, Auth::read)),
            });
            rulesets.insert(name.to_string(), hooks);
        }
        Hooks {
            margin: s.duration("margin", default.margin, Self::MARGIN),
            max_body: ByteSize(usize::try_from(max_body).unwrap_or(default.max_body.0)),
            auth: s.section("auth", &Auth::KEYS, Auth::read),
            rulesets,
            connections: s.section("connections", &Connections::KEYS, Connections::read),
            drain: s.duration("drain", default.drain, Self::DRAIN),
        }
    }
}

#[derive(Debug, Default)]
pub struct RulesetHooks {
    pub auth: Option<Auth>,
}

/// Who may call `/hooks/*`. Every check configured must pass.
#[derive(Debug, Default, Clone)]
pub struct Auth {
    /// A secret header, e.g. `identifier: …` as Koppeltaal does it.
    pub header: Option<NamedSecret>,
    /// A secret query parameter in the URL configured in Callvoip.
    pub query: Option<NamedSecret>,
    /// Client addresses allowed (CIDRs); empty allows all.
    pub allow_ips: Vec<IpNet>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

impl Auth {
    pub const KEYS: [&'static str; 4] = ["header", "query", "allow_ips", "trusted_proxies"];

    fn read(s: &mut Section<'_, '_, '_>) -> Self {
        let named = |s: &mut Section<'_, '_, '_>, key: &str, example: &str| {
            if !s.contains(key) {
                return None;
            }
            s.section(key, &NamedSecret::KEYS, |n| {
                let name = n.required("name", example, |v| {
                    let name = value::text(v)?;
                    if name.is_empty() {
                        return Err(Invalid::new(v, "is empty"));
                    }
                    Ok(name.to_string())
                });
                let value = n.required("value", "\"${BELROUTE_HOOK_SECRET}\"", value::secret);
                Some(NamedSecret {
                    name: name?,
                    value: value?,
                })
            })
        };
        let header = named(s, "header", "identifier");
        let query = named(s, "query", "token");
        Auth {
            header,
            query,
            allow_ips: s.list("allow_ips", cidr).unwrap_or_default(),
            trusted_proxies: s.list("trusted_proxies", cidr).unwrap_or_default(),
        }
    }
}

/// An address range (`185.103.76.0/22`), or one address (`203.0.113.7`, as `/32`).
fn cidr(node: &Node) -> Result<IpNet, Invalid> {
    let text = value::text(node)?.trim();
    text.parse::<IpNet>()
        .or_else(|e| text.parse::<std::net::IpAddr>().map(IpNet::from).map_err(|_| e))
        .map_err(|e| {
            Invalid::new(
                node,
                format!("is `{text}`, not an address range ({e}); write e.g. 185.103.76.0/22, 203.0.113.7 or 2001:db8::/32"),
            )
        })
}

#[derive(Debug, Clone)]
pub struct NamedSecret {
    pub name: String,
    pub value: Secret,
}

impl NamedSecret {
    pub const KEYS: [&'static str; 2] = ["name", "value"];
}

/// How long a clean shutdown waits by default for the database to take the waiting call
/// records (`storage.shutdown_wait`); the rest stays in the spill file.
pub const FLUSH_ON_SHUTDOWN: Duration = Duration::from_secs(30);

/// `storage:` — the call log.
#[derive(Debug)]
pub struct StorageSettings {
    /// Calls older than this are deleted (phone numbers are personal data).
    pub retention: Duration,
    /// Records that may wait for the database in memory; more go to the spill file.
    pub queue: usize,
    /// Records written per transaction at most.
    pub batch: usize,
    /// The spill file; beside a SQLite database file, else in the working directory.
    pub spill: Option<PathBuf>,
    /// Bytes the spill files may hold; past it records are dropped (and counted).
    pub spill_limit: u64,
    /// How long a stop waits for the database to take the waiting records; what it has not
    /// taken by then stays in the spill file for the next start.
    pub shutdown_wait: Duration,
    /// Callers whose `history` is kept in memory (SQLite only; `0`: none, every lookup asks
    /// the database).
    pub history_callers: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        let writer = crate::storage::WriterSettings::default();
        StorageSettings {
            retention: Duration::from_secs(90 * 24 * 3600),
            queue: writer.queue,
            batch: writer.batch,
            spill: None,
            spill_limit: writer.spill_limit,
            shutdown_wait: FLUSH_ON_SHUTDOWN,
            history_callers: 20_000,
        }
    }
}

impl StorageSettings {
    pub const KEYS: [&'static str; 7] = [
        "retention",
        "queue",
        "batch",
        "spill",
        "spill_limit",
        "shutdown_wait",
        "history_callers",
    ];
    pub const RETENTION: Range<Duration> = Range::new(
        Duration::from_secs(3_600),
        Duration::from_secs(3_650 * 86_400),
    );
    /// Each waiting record holds its call data in memory.
    pub const QUEUE: Range<usize> = Range::new(1, 1_000_000);
    pub const BATCH: Range<usize> = Range::new(1, 10_000);
    /// A record takes 1–5 KiB on disk.
    pub const SPILL_LIMIT: Range<u64> = Range::new(1 << 20, 1 << 40);
    /// `0s`: a stop puts the waiting records in the spill file at once.
    pub const SHUTDOWN_WAIT: Range<Duration> = Range::new(Duration::ZERO, Duration::from_secs(600));
    /// A caller kept takes about 0.75 KB (measured: docs/operators.md, One instance or several).
    pub const HISTORY_CALLERS: Range<u64> = Range::new(0, 1_000_000);

    fn read(s: &mut Section<'_, '_, '_>) -> Self {
        let default = StorageSettings::default();
        StorageSettings {
            retention: s.duration("retention", default.retention, Self::RETENTION),
            queue: s.count("queue", default.queue, Self::QUEUE),
            batch: s.count("batch", default.batch, Self::BATCH),
            spill: s.get("spill", |node| {
                let path = value::text(node)?.trim();
                if path.is_empty() || path.ends_with('/') {
                    return Err(Invalid::new(
                        node,
                        format!("is `{path}`, not a file path; write e.g. /var/lib/belroute/belroute-spill.jsonl"),
                    ));
                }
                Ok(PathBuf::from(path))
            }),
            spill_limit: s.size("spill_limit", default.spill_limit, Self::SPILL_LIMIT),
            shutdown_wait: s.duration("shutdown_wait", default.shutdown_wait, Self::SHUTDOWN_WAIT),
            history_callers: s.count("history_callers", default.history_callers, Self::HISTORY_CALLERS),
        }
    }

    /// The writer's settings for the database at `database_url`.
    pub fn writer(&self, database_url: &str) -> crate::storage::WriterSettings {
        crate::storage::WriterSettings {
            queue: self.queue,
            batch: self.batch,
            spill: self.spill.clone().unwrap_or_else(|| {
                database_url
                    .parse::<crate::storage::DatabaseUrl>()
                    .map(|url| url.spill_path())
                    .unwrap_or_else(|_| std::path::PathBuf::from(crate::storage::SPILL_FILE))
            }),
            spill_limit: self.spill_limit,
        }
    }
}

/// `hooks.connections:` — how many connections belroute keeps open, and how long a client may
/// take. Every endpoint shares them, the webhook foremost.
#[derive(Debug, Clone, PartialEq)]
pub struct Connections {
    /// Connections open at once, all workers together; more wait in the listen backlog until
    /// one closes. Lowered at start to what the file limit allows besides `reserve_files`.
    pub max: usize,
    /// An idle connection between requests is closed after this; `0s` closes it after each
    /// answer.
    pub keep_alive: Duration,
    /// A new connection must send a whole request head within this, or it is closed.
    pub request_timeout: Duration,
    /// A connection must close within this after belroute closes it.
    pub disconnect_timeout: Duration,
    /// File descriptors connections may not take: for the call log, the spill file, plugins
    /// and rule files.
    pub reserve_files: u64,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            max: 10_000,
            keep_alive: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            disconnect_timeout: Duration::from_secs(1),
            reserve_files: 256,
        }
    }
}

impl Connections {
    pub const KEYS: [&'static str; 5] = [
        "max",
        "keep_alive",
        "request_timeout",
        "disconnect_timeout",
        "reserve_files",
    ];
    pub const MAX: Range<usize> = Range::new(16, 1_000_000);
    pub const KEEP_ALIVE: Range<Duration> = Range::new(Duration::ZERO, Duration::from_secs(60));
    /// At most the longest rule set timeout: a slow sender holds a connection no longer than
    /// a call may take.
    pub const REQUEST_TIMEOUT: Range<Duration> =
        Range::new(Duration::from_millis(100), belroute_engine::MAX_TIMEOUT)
            .because("at most the longest rule set timeout");
    pub const DISCONNECT_TIMEOUT: Range<Duration> =
        Range::new(Duration::from_millis(100), Duration::from_secs(10));
    pub const RESERVE_FILES: Range<u64> = Range::new(64, 100_000);

    fn read(s: &mut Section<'_, '_, '_>) -> Self {
        let default = Connections::default();
        Connections {
            max: s.count("max", default.max, Self::MAX),
            keep_alive: s.duration("keep_alive", default.keep_alive, Self::KEEP_ALIVE),
            request_timeout: s.duration(
                "request_timeout",
                default.request_timeout,
                Self::REQUEST_TIMEOUT,
            ),
            disconnect_timeout: s.duration(
                "disconnect_timeout",
                default.disconnect_timeout,
                Self::DISCONNECT_TIMEOUT,
            ),
            reserve_files: s.count("reserve_files", default.reserve_files, Self::RESERVE_FILES),
        }
    }
}

/// `admin:` — the admin API.
#[derive(Debug, Default)]
pub struct Admin {
    /// Bearer token for `/api/v1/*`; without it the admin API is closed.
    pub token: Option<Secret>,
}

impl Admin {
    pub const KEYS: [&'static str; 1] = ["token"];

    fn read(s: &mut Section<'_, '_, '_>) -> Self {
        Admin {
            token: s.secret("token"),
        }
    }
}

/// `reload.replay*` in belroute.yaml: what the server replays after a rule file changes.
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadSettings {
    /// How far back; zero turns the replay after a reload off.
    pub window: Duration,
    /// At most this many calls.
    pub max_calls: u64,
    /// At most this long.
    pub max_time: Duration,
}

impl Default for ReloadSettings {
    fn default() -> Self {
        ReloadSettings {
            window: Duration::from_secs(3600),
            max_calls: 20_000,
            max_time: Duration::from_secs(30),
        }
    }
}

/// `reload:` — what a new version of a rule file must pass before it goes live.
#[derive(Debug)]
pub struct Reload {
    /// Run the rule set's own tests (`tests:` and `{name}.test.yaml`) on every load, at
    /// start-up too; a version whose tests fail is refused and the last good one serves.
    pub run_tests: bool,
    /// What is replayed after a new version goes live (`replay`, `replay_calls`,
    /// `replay_time`).
    pub replay: ReloadSettings,
}

impl Default for Reload {
    fn default() -> Self {
        Reload {
            run_tests: true,
            replay: ReloadSettings::default(),
        }
    }
}

impl Reload {
    pub const KEYS: [&'static str; 4] = ["run_tests", "replay", "replay_calls", "replay_time"];
    /// How far back the replay after a reload goes; `0s` turns it off.
    pub const REPLAY: Range<Duration> = Range::new(Duration::ZERO, Duration::from_secs(7 * 86_400));
    pub const REPLAY_CALLS: Range<u64> = Range::new(1, 10_000_000);
    pub const REPLAY_TIME: Range<Duration> =
        Range::new(Duration::from_secs(1), Duration::from_secs(3_600));

    fn read(s: &mut Section<'_, '_, '_>) -> Self {
        let default = ReloadSettings::default();
        Reload {
            run_tests: s.choice(
                "run_tests",
                Reload::default().run_tests,
                &[("true", true), ("false", false)],
            ),
            replay: ReloadSettings {
                window: s.duration("replay", default.window, Self::REPLAY),
                max_calls: s.count("replay_calls", default.max_calls, Self::REPLAY_CALLS),
                max_time: s.duration("replay_time", default.max_time, Self::REPLAY_TIME),
            },
        }
    }
}

/// Where the rule sets every instance serves are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RulesSource {
    /// The rules directory is the source: a file saved there is the next version.
    #[default]
    Files,
    /// The database is (for several instances): a publish on any instance, `belroute rules
    /// push`, or a file saved on one instance's rules directory goes to every instance; the
    /// directory holds each instance's copy.
    Database,
}

impl RulesSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RulesSource::Files => "files",
            RulesSource::Database => "database",
        }
    }
}

/// `rules:` — where rule sets come from.
#[derive(Debug, Default)]
pub struct RulesSettings {
    pub source: RulesSource,
}

impl RulesSettings {
    pub const KEYS: [&'static str; 1] = ["source"];

    fn read(s: &mut Section<'_, '_, '_>) -> Self {
        RulesSettings {
            source: s.choice(
                "source",
                RulesSource::Files,
                &[
                    ("files", RulesSource::Files),
                    ("database", RulesSource::Database),
                ],
            ),
        }
    }
}

/// A time zone by IANA name; Europe/Amsterdam unless set.
#[derive(Debug, Clone, Copy)]
pub struct TimeZone(pub Tz);

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone(DEFAULT_TIME_ZONE)
    }
}

/// An ISO 3166 region code for national numbers; NL unless set.
#[derive(Debug, Clone, Default)]
pub struct Region(pub Normaliser);

/// A size in bytes, written `65536`, `64KiB` or `1MiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

/// A configuration file that could not be used, with the places to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {error}")]
    Unreadable {
        file: PathBuf,
        error: std::io::Error,
    },
    /// Every problem found, in file order.
    #[error("{}", Lines(.0))]
    Invalid(Vec<Diagnostic>),
}

/// One `file:line:col: message` per line.
struct Lines<'a>(&'a [Diagnostic]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl Config {
    pub const KEYS: [&'static str; 11] = [
        "timezone",
        "default_region",
        "hooks",
        "sandbox",
        "reload",
        "rules",
        "admin",
        "storage",
        "calendars",
        "subscriptions",
        "plugins",
    ];

    /// Reads and validates `belroute.yaml`.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|error| ConfigError::Unreadable {
            file: file.to_path_buf(),
            error,
        })?;
        let mut config = Config::parse(file, &text)?;
        config.file = Some(std::sync::Arc::new(on_disk::ConfigFile::new(file, &text)));
        Ok(config)
    }

    /// Validates the text of `file`, reporting every problem at once.
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        let root = yaml::parse(text).map_err(|e| {
            ConfigError::Invalid(vec![Diagnostic::new(file, e.position, e.to_string())])
        })?;
        let mut diags = Diagnostics::new(file);
        let mut config = Config::default();
        {
            let mut s = Section::read(&root, "", &Config::KEYS, &mut diags);
            config.read(&mut s);
        }
        let mut problems = diags.into_vec();
        let missing = settings::missing_env();
        if let Some(token) = &config.admin.token
            && !missing
                .iter()
                .any(|name| token.expose().contains(&format!("${{{name}}}")))
            && let Some(why) = guessable(token.expose())
        {
            config.warnings.push(format!(
                "`admin.token` is easy to guess ({why}): belroute slows guessing down to a few tries a minute per address, but an attacker with many addresses gets more; use 32 random characters, e.g. from `openssl rand -hex 32`"
            ));
        }
        if !missing.is_empty() {
            // `check` without production secrets: what fails only because a `${NAME}` was left
            // as written is a note, the rest stays an error.
            let unresolved = unresolved_values(&root, "", &missing);
            problems.retain(|problem| {
                let Some(value) = unresolved.iter().find(|v| v.covers(problem.position)) else {
                    return true;
                };
                let note = format!(
                    "`{}` was not fully checked: it needs environment variables that are not set ({})",
                    value.path,
                    value.names.join(", ")
                );
                if !config.notes.contains(&note) {
                    config.notes.push(note);
                }
                false
            });
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    fn read(&mut self, s: &mut Section<'_, '_, '_>) {
        if let Some(zone) = s.get("timezone", |node| {
            parse_time_zone(value::text(node)?).map_err(|e| Invalid::new(node, format!(": {e}")))
        }) {
            self.timezone = TimeZone(zone);
        }
        if let Some(region) = s.get("default_region", |node| {
            Normaliser::new(value::text(node)?)
                .map_err(|e| Invalid::new(node, format!(": {e}; write an ISO code such as NL")))
        }) {
            self.default_region = Region(region);
        }
        self.hooks = s.section("hooks", &Hooks::KEYS, Hooks::read);
        self.sandbox = s.section("sandbox", &SandboxSettings::KEYS, SandboxSettings::read);
        self.reload = s.section("reload", &Reload::KEYS, Reload::read);
        self.rules = s.section("rules", &RulesSettings::KEYS, RulesSettings::read);
        self.admin = s.section("admin", &Admin::KEYS, Admin::read);
        self.storage = s.section("storage", &StorageSettings::KEYS, StorageSettings::read);
        for (name, _, node) in s.entries("subscriptions") {
            let path = format!("subscriptions.{name}");
            let keys = SubscriptionConfig::KEYS;
            if let Some(subscription) = s.nested(node, &path, &keys, |sub| {
                SubscriptionConfig::read(name, sub)
            }) {
                self.subscriptions.insert(name.to_string(), subscription);
            }
        }
        for (name, _, node) in s.entries("calendars") {
            match belroute_engine::calendar::read_company_days(node) {
                Ok(days) => {
                    self.calendars.insert(name.to_string(), days);
                }
                Err(problems) => {
                    for (position, message) in problems {
                        s.error_at(position, format!("`calendars.{name}`: {message}"));
                    }
                }
            }
        }
        for (name, key, node) in s.entries("plugins") {
            self.plugin_names.insert(name.to_string());
            self.plugin_facts
                .insert(name.to_string(), belroute_plugins::declared_facts(node));
            let mut found = Diagnostics::new(Path::new(""));
            if let Some(instance) = belroute_plugins::parse_instance(name, key, node, &mut found) {
                self.lookups.push(instance);
            }
            for problem in found.into_vec() {
                s.error_at(problem.position, problem.message);
            }
        }
    }

    /// Reads `belroute.yaml` for `check` and `test`, where production secrets may be missing:
    /// a missing `${NAME}` is a note, not an error.
    pub fn load_for_check(file: &Path) -> Result<Config, ConfigError> {
        let (config, missing) = settings::tolerating_missing_env(|| Config::load(file));
        let mut config = config?;
        if !missing.is_empty() {
            let mut names = missing;
            names.sort();
            names.dedup();
            config.notes.insert(
                0,
                format!(
                    "environment variables not set (settings using them were not checked): {}",
                    names.join(", ")
                ),
            );
        }
        Ok(config)
    }

    /// Every plugin name configured, including any `check` could not fully validate.
    pub fn lookup_names(&self) -> BTreeSet<String> {
        self.plugin_names.clone()
    }

    /// Every configured plugin and the facts it declares: what rules may read of it.
    pub fn lookup_facts(&self) -> belroute_engine::LookupFacts {
        self.plugin_facts.clone()
    }

    /// The hooks authentication for one rule set.
    pub fn auth_for(&self, ruleset: &str) -> &Auth {
        self.hooks
            .rulesets
            .get(ruleset)
            .and_then(|r| r.auth.as_ref())
            .unwrap_or(&self.hooks.auth)
    }
}

/// Words tried first by anyone guessing a token.
const COMMON_WORDS: [&str; 14] = [
    "password", "passw0rd", "secret", "admin", "belroute", "changeme", "letmein", "qwerty",
    "welcome", "token", "123456", "abcdef", "callvoip", "example",
];

/// Why a token is easy to guess, if it is: short (under 20 characters), few distinct
/// characters, only letters (words), or a common word in it.
pub fn guessable(token: &str) -> Option<String> {
    let length = token.chars().count();
    if length < 20 {
        return Some(format!("{length} characters; use at least 20"));
    }
    let lower = token.to_lowercase();
    if let Some(word) = COMMON_WORDS.iter().find(|w| lower.contains(*w)) {
        return Some(format!("it contains the common word `{word}`"));
    }
    let distinct: BTreeSet<char> = token.chars().collect();
    if distinct.len() < 8 {
        return Some(format!("only {} different characters", distinct.len()));
    }
    if length < 32 && token.chars().all(char::is_alphabetic) {
        return Some("only letters: words are guessed first".into());
    }
    None
}

/// A scalar that still reads `${NAME}` because the variable is not set.
struct Unresolved {
    path: String,
    names: Vec<String>,
    start: Position,
    /// Columns the scalar spans on its first line (quotes included).
    width: usize,
}

impl Unresolved {
    fn covers(&self, at: Position) -> bool {
        at.line == self.start.line
            && at.column >= self.start.column
            && at.column <= self.start.column + self.width
    }
}

fn unresolved_values(node: &Node, path: &str, missing: &[String]) -> Vec<Unresolved> {
    let mut found = Vec::new();
    if let Some(text) = node.as_str() {
        let names: Vec<String> = missing
            .iter()
            .filter(|name| text.contains(&format!("${{{name}}}")))
            .cloned()
            .collect();
        if !names.is_empty() {
            found.push(Unresolved {
                path: path.to_string(),
                names,
                start: node.position,
                width: text.lines().next().unwrap_or("").chars().count() + 2,
            });
        }
    } else if let Some(items) = node.as_seq() {
        for (i, item) in items.iter().enumerate() {
            found.extend(unresolved_values(item, &format!("{path}[{i}]"), missing));
        }
    } else if let Some(entries) = node.as_map() {
        for (key, value) in entries {
            let key = key.as_str().unwrap_or("?");
            let path = if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            };
            found.extend(unresolved_values(value, &path, missing));
        }
    }
    found
}

#[cfg(test)]
mod tests;
