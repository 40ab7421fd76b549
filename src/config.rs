//! `belroute.yaml`: the server's own settings (not the rules): hooks authentication,
//! time zone, sandbox limits, plugins, admin. Secrets come from the environment as `${NAME}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use belroute_engine::Limits;
use belroute_engine::settings::{Secret, duration};
use belroute_engine::{DEFAULT_TIME_ZONE, parse_time_zone};
use belroute_plugins::PluginInstance;
use chrono_tz::Tz;
use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

/// The whole configuration file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Zone for `now()`, office hours and holidays, unless a rule set names its own.
    pub timezone: TimeZone,
    /// Region for numbers written nationally (`0152026057`): an ISO code.
    pub default_region: Region,
    pub hooks: Hooks,
    /// Bounds on what one rule may do.
    pub sandbox: Sandbox,
    pub admin: Admin,
    pub storage: StorageSettings,
    /// Applications told where calls went (see docs/subscriptions.md).
    pub subscriptions: BTreeMap<String, crate::subscriptions::SubscriptionConfig>,
    /// Lookup plugin instances by name, as written (see docs/plugins.md).
    plugins: BTreeMap<String, serde_yaml::Value>,
    /// The plugin instances, validated.
    #[serde(skip)]
    pub lookups: Vec<PluginInstance>,
    /// Notes for `belroute check` about settings it could not check.
    #[serde(skip)]
    pub notes: Vec<String>,
}

/// `sandbox:` — bounds on what one rule may do, and the evaluation pool.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sandbox {
    pub max_operations: u64,
    #[serde(deserialize_with = "duration")]
    pub rule_time: Duration,
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
    pub max_call_levels: usize,
    pub max_expr_depth: usize,
    /// Threads of the evaluation pool.
    pub threads: usize,
    /// Evaluations one rule set may have in the pool at once.
    pub share: usize,
}

impl Default for Sandbox {
    fn default() -> Self {
        let limits = Limits::default();
        let pool = belroute_engine::PoolSettings::default();
        Sandbox {
            max_operations: limits.max_operations,
            rule_time: limits.rule_time,
            max_string_size: limits.max_string_size,
            max_array_size: limits.max_array_size,
            max_map_size: limits.max_map_size,
            max_call_levels: limits.max_call_levels,
            max_expr_depth: limits.max_expr_depth,
            threads: pool.threads,
            share: pool.share,
        }
    }
}

impl Sandbox {
    pub fn limits(&self) -> Limits {
        Limits {
            max_operations: self.max_operations,
            rule_time: self.rule_time,
            max_string_size: self.max_string_size,
            max_array_size: self.max_array_size,
            max_map_size: self.max_map_size,
            max_call_levels: self.max_call_levels,
            max_expr_depth: self.max_expr_depth,
        }
    }

    pub fn pool(&self) -> belroute_engine::PoolSettings {
        belroute_engine::PoolSettings {
            threads: self.threads,
            share: self.share,
        }
    }
}

/// `hooks:` — the Callvoip-facing endpoint.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Hooks {
    /// Answer this long before the rule set's `timeout`, for the network back to Callvoip.
    #[serde(deserialize_with = "duration")]
    pub margin: Duration,
    /// Largest request body accepted.
    pub max_body: ByteSize,
    pub auth: Auth,
    /// Per rule set settings; an `auth` here replaces the server-wide one for that set.
    pub rulesets: BTreeMap<String, RulesetHooks>,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            margin: Duration::from_millis(250),
            max_body: ByteSize(64 * 1024),
            auth: Auth::default(),
            rulesets: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesetHooks {
    pub auth: Option<Auth>,
}

/// Who may call `/hooks/*`. Every check configured must pass.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedSecret {
    pub name: String,
    pub value: Secret,
}

/// `storage:` — the call log.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Calls older than this are deleted (phone numbers are personal data).
    #[serde(deserialize_with = "duration")]
    pub retention: Duration,
    /// Records that may wait for the database; more are dropped (and counted).
    pub queue: usize,
    /// Records written per transaction at most.
    pub batch: usize,
}

impl Default for StorageSettings {
    fn default() -> Self {
        let writer = crate::storage::WriterSettings::default();
        StorageSettings {
            retention: Duration::from_secs(90 * 24 * 3600),
            queue: writer.queue,
            batch: writer.batch,
        }
    }
}

impl StorageSettings {
    pub fn writer(&self) -> crate::storage::WriterSettings {
        crate::storage::WriterSettings {
            queue: self.queue,
            batch: self.batch,
        }
    }
}

/// `admin:` — the admin API.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Admin {
    /// Bearer token for `/api/v1/*`; without it the admin API is closed.
    pub token: Option<Secret>,
}

/// A time zone by IANA name; Europe/Amsterdam unless set.
#[derive(Debug, Clone, Copy)]
pub struct TimeZone(pub Tz);

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone(DEFAULT_TIME_ZONE)
    }
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        parse_time_zone(&name)
            .map(TimeZone)
            .map_err(serde::de::Error::custom)
    }
}

/// An ISO 3166 region code for national numbers; NL unless set.
#[derive(Debug, Clone, Default)]
pub struct Region(pub belroute_engine::Normaliser);

impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        belroute_engine::Normaliser::new(&code)
            .map(Region)
            .map_err(serde::de::Error::custom)
    }
}

/// A size in bytes, written `65536`, `64KiB` or `1MiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = serde_yaml::Value::deserialize(d)?;
        let text = match text {
            serde_yaml::Value::Number(n) => n.to_string(),
            serde_yaml::Value::String(s) => s,
            _ => {
                return Err(serde::de::Error::custom(
                    "a size is written like 65536, 64KiB or 1MiB",
                ));
            }
        };
        parse_size(&text)
            .map(ByteSize)
            .map_err(serde::de::Error::custom)
    }
}

fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size; write e.g. 64KiB"))?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "KB" | "kB" | "K" | "k" => 1024,
        "MiB" | "MB" | "M" => 1024 * 1024,
        other => return Err(format!("unknown size unit `{other}`; use B, KiB or MiB")),
    };
    Ok(number * factor)
}

/// A configuration file that could not be used, with the place to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {error}")]
    Unreadable {
        file: PathBuf,
        error: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

impl Config {
    /// Reads and validates `belroute.yaml`.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|error| ConfigError::Unreadable {
            file: file.to_path_buf(),
            error,
        })?;
        Config::parse(file, &text)
    }

    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        let invalid = |line, column, message| ConfigError::Invalid {
            file: file.to_path_buf(),
            line,
            column,
            message,
        };
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let mut config: Config = serde_yaml::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            let message = without_location(&e.to_string(), line, column);
            // serde_yaml places errors in a value at its enclosing mapping; the path finds the value.
            let path = message
                .split_once(": ")
                .map(|(path, _)| path)
                .filter(|p| !p.contains(' '));
            let precise = locate(text, path, &message);
            let (line, column) = precise.unwrap_or((line, column));
            invalid(line, column, message)
        })?;
        config.validate().map_err(|(path, message)| {
            let (line, column) = locate(text, Some(path), "").unwrap_or((1, 1));
            invalid(line, column, message)
        })?;
        for (name, subscription) in &config.subscriptions {
            subscription.validate(name).map_err(|message| {
                let path = format!("subscriptions.{name}");
                let (line, column) = locate(text, Some(&path), &message).unwrap_or((1, 1));
                invalid(line, column, format!("subscription `{name}`: {message}"))
            })?;
        }
        for (name, value) in &config.plugins {
            let missing_before = belroute_engine::settings::missing_so_far();
            match belroute_plugins::parse_instance(name, value) {
                Ok(instance) => config.lookups.push(instance),
                Err(message) if belroute_engine::settings::missing_so_far() > missing_before => {
                    config.notes.push(format!(
                        "plugin `{name}` was not fully checked: it needs environment variables that are not set ({message})"
                    ));
                }
                Err(message) => {
                    let path = format!("plugins.{name}");
                    let (line, column) = locate(text, Some(&path), &message).unwrap_or((1, 1));
                    return Err(invalid(line, column, format!("plugin `{name}`: {message}")));
                }
            }
        }
        Ok(config)
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.hooks.margin >= belroute_engine::MIN_TIMEOUT {
            return Err((
                "hooks.margin",
                "`hooks.margin` must be below 1s, the shortest rule set timeout".into(),
            ));
        }
        if self.hooks.max_body.0 < 1024 {
            return Err((
                "hooks.max_body",
                "`hooks.max_body` must be at least 1KiB".into(),
            ));
        }
        Ok(())
    }

    /// Reads `belroute.yaml` for `check` and `test`, where production secrets may be missing:
    /// a missing `${NAME}` is a note, not an error.
    pub fn load_for_check(file: &Path) -> Result<Config, ConfigError> {
        let (config, missing) =
            belroute_engine::settings::tolerating_missing_env(|| Config::load(file));
        let mut config = config?;
        if !missing.is_empty() {
            config.notes.insert(
                0,
                format!(
                    "environment variables not set (settings using them were not checked): {}",
                    missing.join(", ")
                ),
            );
        }
        Ok(config)
    }

    /// Every plugin name configured, including any `check` could not fully validate.
    pub fn lookup_names(&self) -> std::collections::BTreeSet<String> {
        self.plugins.keys().cloned().collect()
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

/// serde_yaml appends " at line L column C"; the position is printed in front instead.
fn without_location(message: &str, line: usize, column: usize) -> String {
    message.replacen(&format!(" at line {line} column {column}"), "", 1)
}

/// The line and column of the value at `path` (`hooks.auth.allow_ips[0]`), or better, of the
/// text the message quotes (`${NAME}`, or the first `…` in backticks) within it.
fn locate(text: &str, path: Option<&str>, message: &str) -> Option<(usize, usize)> {
    let root = belroute_engine::yaml::parse(text).ok()?;
    let scope = match path {
        Some(path) => root.find(path)?,
        None => &root,
    };
    let quoted = message
        .split("(used as ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .or_else(|| message.split('`').nth(1));
    let found = quoted
        .and_then(|q| scope.find_text(q))
        .or(path.map(|_| scope))?;
    Some((found.position.line, found.position.column))
}

#[cfg(test)]
mod tests {
    use super::*;
    use belroute_engine::settings::expand_env;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("belroute.yaml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn env_expansion() {
        let env = |name: &str| (name == "A").then(|| "x".to_string());
        assert_eq!(expand_env("p${A}q${A}", env), Ok("pxqx".into()));
        assert_eq!(expand_env("$5 ok", env), Ok("$5 ok".into()));
        assert!(
            expand_env("${B}", env)
                .unwrap_err()
                .contains("environment variable B is not set")
        );
        assert!(expand_env("${A", env).is_err());
    }

    #[test]
    fn errors_have_file_line_column() {
        let err = parse("hooks:\n  margn: 100ms\n").unwrap_err();
        assert!(
            err.starts_with("belroute.yaml:2:3: hooks: unknown field `margn`"),
            "{err}"
        );
        let err = parse("hooks:\n  auth:\n    header: { name: identifier, value: \"${BELROUTE_TEST_UNSET_VAR}\" }\n").unwrap_err();
        assert!(err.starts_with("belroute.yaml:3:40: hooks.auth.header: environment variable BELROUTE_TEST_UNSET_VAR is not set"), "{err}");
        let err =
            parse("hooks:\n  auth:\n    allow_ips:\n      - 10.0.0.0/8\n      - 10.0.0.0/33\n")
                .unwrap_err();
        assert!(
            err.starts_with("belroute.yaml:5:9: hooks.auth.allow_ips[1]: "),
            "{err}"
        );
        let err = parse("hooks:\n  margin: 2s\n").unwrap_err();
        assert_eq!(
            err,
            "belroute.yaml:2:11: `hooks.margin` must be below 1s, the shortest rule set timeout"
        );
        let err = parse("timezone: Mars/Olympus\n").unwrap_err();
        assert!(
            err.starts_with("belroute.yaml:1:11: unknown time zone"),
            "{err}"
        );
    }

    #[test]
    fn defaults_and_sizes() {
        let c = parse("").unwrap();
        assert_eq!(c.hooks.margin, Duration::from_millis(250));
        assert_eq!(c.hooks.max_body, ByteSize(65536));
        assert_eq!(
            parse("hooks: { max_body: 1MiB }").unwrap().hooks.max_body,
            ByteSize(1 << 20)
        );
        assert_eq!(
            parse("hooks: { max_body: 4096 }").unwrap().hooks.max_body,
            ByteSize(4096)
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }
}
