//! Reading settings: `belroute.yaml` and every plugin's settings, with one toolkit.
//!
//! A [`Section`] is a mapping whose keys are checked (an unknown key gets a "did you mean");
//! its typed readers — durations, sizes and counts with a [`Range`], fractions, text, secrets
//! and text from the environment (`${NAME}`), lists, maps and nested sections — report a
//! problem at the value's line and column, naming the key, the value and what would be right,
//! and then go on, so a file's problems are reported all at once. Every duration, size and count
//! has a range: no value that `check` accepts can overflow a deadline or allocate absurdly once
//! belroute serves.
//!
//! A message reads as a sentence that starts with the setting's full name:
//! "`plugins.tickets.cache.ttl` is 100000000y; it must be between 0s and 30d".

mod lookup;
mod sandbox;
mod units;

use std::cell::RefCell;
use std::fmt;
use std::time::Duration;

use crate::diagnostic::{Diagnostics, Position, suggestion};
use crate::yaml::{Fields, Node};

pub use lookup::{check_lookup_name, is_reserved_name};
pub use sandbox::SandboxSettings;
pub use units::{Range, format_duration, format_size, parse_duration, parse_size};

use units::{DURATION_EXAMPLES, SIZE_EXAMPLES, Written, must_be_between};

/// A secret, read from the environment through `${NAME}`; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Text in which `${NAME}` was replaced by environment variable `NAME`. Shown (in logs, the
/// admin API, `Debug`) as written, so a secret in a URL's query string never leaves the process.
#[derive(Clone, PartialEq, Eq)]
pub struct EnvText {
    value: String,
    written: String,
}

impl EnvText {
    /// Text without references, such as a default.
    pub fn plain(text: impl Into<String>) -> Self {
        let text = text.into();
        EnvText {
            value: text.clone(),
            written: text,
        }
    }

    /// The text with the variables' values: for use, never for display.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// The text as written in the file, `${NAME}` and all: safe to show.
    pub fn written(&self) -> &str {
        &self.written
    }
}

impl fmt::Display for EnvText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

impl fmt::Debug for EnvText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnvText({:?})", self.written)
    }
}

thread_local! {
    static MISSING: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Runs `f` with missing environment variables tolerated: `${NAME}` stays as written, and the
/// names are returned. For checking configuration where the secrets are not set.
pub fn tolerating_missing_env<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    MISSING.with(|m| *m.borrow_mut() = Some(Vec::new()));
    let value = f();
    let missing = MISSING.with(|m| m.borrow_mut().take()).unwrap_or_default();
    (value, missing)
}

/// The names of the variables found missing so far inside [`tolerating_missing_env`], so a
/// reader can tell which problems come from a value left as `${NAME}`.
pub fn missing_env() -> Vec<String> {
    MISSING.with(|m| m.borrow().clone().unwrap_or_default())
}

/// Replaces every `${NAME}` with the variable's value; a missing variable is an error naming it.
pub fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    expand(text, lookup).map_err(|(_, message)| message)
}

/// As [`expand_env`]; an error also gives the byte offset of the reference at fault.
fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, (usize, String)> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let offset = text.len() - rest.len() + start;
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err((offset, format!("`${{` without a closing `}}` in `{text}`")));
        };
        let name = &after[..end];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err((
                offset,
                format!("`${{{name}}}` is not a variable name; use letters, digits and _"),
            ));
        }
        match lookup(name) {
            Some(value) => out.push_str(&value),
            None => {
                return Err((
                    offset,
                    format!(
                        "environment variable {name} is not set (used as ${{{name}}}); set it or remove the reference"
                    ),
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The process environment, or `${NAME}` itself (noted) inside [`tolerating_missing_env`].
fn from_environment(name: &str) -> Option<String> {
    std::env::var(name).ok().or_else(|| {
        // `belroute check` on a machine without production secrets: note, don't fail.
        MISSING.with(|missing| {
            let mut missing = missing.borrow_mut();
            let list = missing.as_mut()?;
            list.push(name.to_string());
            Some(format!("${{{name}}}"))
        })
    })
}

/// What is wrong with one value, and where: the message continues the sentence that starts
/// with the setting's name ("is 0; it must be between 1 and 100"). A message that starts with
/// `:` follows the name directly ("`url`: relative URL without a base").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub position: Position,
    pub message: String,
}

impl Invalid {
    /// A problem with the value `node`.
    pub fn new(node: &Node, message: impl Into<String>) -> Self {
        Invalid {
            position: node.position,
            message: message.into(),
        }
    }

    pub fn at(position: Position, message: impl Into<String>) -> Self {
        Invalid {
            position,
            message: message.into(),
        }
    }

    /// The whole message for the setting named `path`.
    pub fn for_setting(&self, path: &str) -> String {
        if self.message.starts_with(':') {
            format!("`{path}`{}", self.message)
        } else {
            format!("`{path}` {}", self.message)
        }
    }
}

/// A whole number setting's type: `u16`, `u32`, `u64` or `usize`.
pub trait Count: Copy + PartialOrd + fmt::Display {
    fn from_u64(value: u64) -> Option<Self>;
}

macro_rules! count {
    ($($t:ty),*) => {$(
        impl Count for $t {
            fn from_u64(value: u64) -> Option<Self> {
                <$t>::try_from(value).ok()
            }
        }
    )*};
}
count!(u16, u32, u64, usize);

/// Readers for one value, for list items and map values; [`Section`] has the same by key.
pub mod value {
    use super::*;

    /// The text of a scalar.
    pub fn text(node: &Node) -> Result<&str, Invalid> {
        node.as_str()
            .ok_or_else(|| Invalid::new(node, format!("must be text, found {}", node.kind_name())))
    }

    /// Text with `${NAME}` replaced from the environment; the error points at the reference.
    pub fn env_text(node: &Node) -> Result<EnvText, Invalid> {
        let written = text(node)?;
        expand(written, from_environment)
            .map(|value| EnvText {
                value,
                written: written.to_string(),
            })
            .map_err(|(offset, message)| {
                let before = &written[..offset];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
                Invalid::at(node.text_position(line, column), format!(": {message}"))
            })
    }

    /// A secret: text from the environment, not empty.
    pub fn secret(node: &Node) -> Result<Secret, Invalid> {
        let expanded = env_text(node)?;
        if expanded.value.is_empty() {
            return Err(Invalid::new(
                node,
                "is empty; a secret must not be empty (is its environment variable empty?)",
            ));
        }
        Ok(Secret(expanded.value))
    }

    /// A duration within `range`.
    pub fn duration(node: &Node, range: Range<Duration>) -> Result<Duration, Invalid> {
        let written = text(node)?;
        let out_of_range = || {
            Invalid::new(
                node,
                format!(
                    "is {}; {}",
                    written.trim(),
                    must_be_between(
                        &format_duration(range.min),
                        &format_duration(range.max),
                        range.why
                    )
                ),
            )
        };
        match units::read_duration(written) {
            Ok(Written::Length(d)) if range.contains(d) => Ok(d),
            Ok(_) => Err(out_of_range()),
            Err(why) => Err(Invalid::new(
                node,
                format!("is `{written}`, not a duration ({why}); write e.g. {DURATION_EXAMPLES}"),
            )),
        }
    }

    /// A size in bytes (`65536`, `64KiB`, `1MiB`) within `range`.
    pub fn size(node: &Node, range: Range<u64>) -> Result<u64, Invalid> {
        let written = text(node)?;
        match units::read_size(written) {
            Ok(Some(bytes)) => match u64::try_from(bytes) {
                Ok(bytes) if range.contains(bytes) => Ok(bytes),
                _ => Err(size_out_of_range(node, written, range)),
            },
            Ok(None) => Err(size_out_of_range(node, written, range)),
            Err(why) => Err(Invalid::new(
                node,
                format!("is `{written}`, not a size ({why}); write e.g. {SIZE_EXAMPLES}"),
            )),
        }
    }

    fn size_out_of_range(node: &Node, written: &str, range: Range<u64>) -> Invalid {
        Invalid::new(
            node,
            format!(
                "is {}; {}",
                written.trim(),
                must_be_between(&format_size(range.min), &format_size(range.max), range.why)
            ),
        )
    }

    /// A whole number within `range`.
    pub fn count<T: Count>(node: &Node, range: Range<T>) -> Result<T, Invalid> {
        let written = text(node)?;
        let digits: String = written.trim().chars().filter(|c| *c != '_').collect();
        let (negative, magnitude) = match digits.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, digits.strip_prefix('+').unwrap_or(&digits)),
        };
        if magnitude.is_empty() || !magnitude.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Invalid::new(
                node,
                format!(
                    "is `{written}`, not a whole number; write e.g. {}",
                    range.max
                ),
            ));
        }
        let zero = magnitude.bytes().all(|b| b == b'0');
        let parsed = if negative && !zero {
            None
        } else {
            magnitude.parse::<u64>().ok().and_then(T::from_u64)
        };
        match parsed {
            Some(n) if range.contains(n) => Ok(n),
            _ => Err(Invalid::new(
                node,
                format!(
                    "is {}; {}",
                    written.trim(),
                    must_be_between(&range.min.to_string(), &range.max.to_string(), range.why)
                ),
            )),
        }
    }

    /// A number such as `0.8` within `range`.
    pub fn fraction(node: &Node, range: Range<f64>) -> Result<f64, Invalid> {
        let written = text(node)?;
        match written.trim().parse::<f64>() {
            Ok(f) if f.is_finite() && range.contains(f) => Ok(f),
            Ok(_) => Err(Invalid::new(
                node,
                format!(
                    "is {}; {}",
                    written.trim(),
                    must_be_between(&range.min.to_string(), &range.max.to_string(), range.why)
                ),
            )),
            Err(_) => Err(Invalid::new(
                node,
                format!("is `{written}`, not a number; write e.g. 0.8"),
            )),
        }
    }

    /// One of a fixed set of words.
    /// A fact's type: `text`, `int`, `float`, `bool`, `list`, `map` or `any`.
    pub fn fact_type(node: &Node) -> Result<crate::vocabulary::FactType, Invalid> {
        use crate::vocabulary::FactType;
        let choices: Vec<(&str, FactType)> = FactType::NAMES
            .iter()
            .filter_map(|n| Some((*n, FactType::parse(n)?)))
            .collect();
        choice(node, &choices)
    }

    pub fn choice<T: Copy>(node: &Node, choices: &[(&str, T)]) -> Result<T, Invalid> {
        let written = text(node)?;
        if let Some((_, value)) = choices.iter().find(|(name, _)| *name == written) {
            return Ok(*value);
        }
        let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
        let hint = match suggestion(written, names.iter().copied()) {
            Some(s) => format!("did you mean {s}?"),
            None => format!("use {}", or_list(&names)),
        };
        Err(Invalid::new(node, format!("is `{written}`; {hint}")))
    }
}

/// "a, b or c".
pub fn or_list(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// One mapping of settings, read key by key. Problems are reported to the [`Diagnostics`] with
/// the value's position and the setting's full dotted name, and reading goes on: a reader
/// returns its default (or `None`) for a value it had to refuse.
///
/// ```
/// # use std::time::Duration;
/// # use belroute_engine::diagnostic::Diagnostics;
/// # use belroute_engine::settings::{Range, Section};
/// let root = belroute_engine::yaml::parse("window: 100000000y\n").unwrap();
/// let mut diags = Diagnostics::new(std::path::Path::new("belroute.yaml"));
/// let mut section = Section::read(&root, "plugins.history", &["window"], &mut diags);
/// let window = section.duration(
///     "window",
///     Duration::from_secs(30 * 86_400),
///     Range::new(Duration::from_secs(3_600), Duration::from_secs(3_650 * 86_400)),
/// );
/// assert_eq!(window, Duration::from_secs(30 * 86_400)); // the default, after reporting
/// assert_eq!(
///     diags.into_vec()[0].to_string(),
///     "belroute.yaml:1:9: `plugins.history.window` is 100000000y; it must be between 1h and 3650d"
/// );
/// ```
pub struct Section<'n, 'd, 'f> {
    path: String,
    node: &'n Node,
    fields: Option<Fields<'n>>,
    diags: &'d mut Diagnostics<'f>,
    errors: usize,
}

impl fmt::Debug for Section<'_, '_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Section")
            .field("path", &self.path)
            .field("errors", &self.errors)
            .finish_non_exhaustive()
    }
}

impl<'n, 'd, 'f> Section<'n, 'd, 'f> {
    /// Reads `node` as a mapping of `keys`, named `path` in messages (`""` for the file itself).
    /// Nothing (a missing or empty section) is a mapping with no keys: every setting's default.
    pub fn read(node: &'n Node, path: &str, keys: &[&str], diags: &'d mut Diagnostics<'f>) -> Self {
        Self::open(Some(node), node, path, keys, diags)
    }

    /// `node`, or an absent section placed at `around` (its parent) for messages.
    fn open(
        node: Option<&'n Node>,
        around: &'n Node,
        path: &str,
        keys: &[&str],
        diags: &'d mut Diagnostics<'f>,
    ) -> Self {
        let label = if path.is_empty() {
            diags
                .file()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "the file".into())
        } else {
            format!("`{path}`")
        };
        let mut scratch = Diagnostics::new(diags.file());
        let fields = node
            .filter(|n| !n.is_null())
            .and_then(|n| Fields::read(n, keys, &label, &mut scratch));
        let mut errors = 0;
        for found in scratch.into_vec() {
            diags.error(found.position, found.message);
            errors += 1;
        }
        Section {
            path: path.to_string(),
            node: node.unwrap_or(around),
            fields,
            diags,
            errors,
        }
    }

    /// The section's dotted name: `plugins.tickets.cache`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The full name of one of its settings: `plugins.tickets.cache.ttl`.
    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Where the section starts.
    pub fn position(&self) -> Position {
        self.node.position
    }

    /// The value of `key`, if it is set (not missing, not null).
    pub fn node(&self, key: &str) -> Option<&'n Node> {
        self.fields.as_ref()?.get(key)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.node(key).is_some()
    }

    /// Problems reported through this section and the sections read from it.
    pub fn errors(&self) -> usize {
        self.errors
    }

    /// No problem was reported through this section (or the sections read from it).
    pub fn is_ok(&self) -> bool {
        self.errors == 0
    }

    /// Reports a problem with `key`'s value: `message` continues "`path.key` …".
    pub fn error(&mut self, key: &str, message: impl Into<String>) {
        let position = self.node(key).map_or(self.node.position, |n| n.position);
        let invalid = Invalid::at(position, message);
        self.report(key, &invalid);
    }

    /// Reports a problem in the section's own words, at `position`.
    pub fn error_at(&mut self, position: Position, message: impl Into<String>) {
        self.diags.error(position, message);
        self.errors += 1;
    }

    /// Reports `invalid`, found reading `key`.
    pub fn report(&mut self, key: &str, invalid: &Invalid) {
        let message = invalid.for_setting(&self.key_path(key));
        self.error_at(invalid.position, message);
    }

    /// Reports that `key` is required; `example` shows a value (`https://crm.example.nl/api`).
    pub fn missing(&mut self, key: &str, example: &str) {
        let message = if self.path.is_empty() {
            format!("missing `{key}`; add `{key}: {example}`")
        } else {
            format!(
                "`{}` needs `{key}`; add `{key}: {example}` to it",
                self.path
            )
        };
        self.error_at(self.node.position, message);
    }

    /// Reads `key` with `read`, reporting what it refuses; `None` when not set or refused.
    pub fn get<T>(
        &mut self,
        key: &str,
        read: impl FnOnce(&'n Node) -> Result<T, Invalid>,
    ) -> Option<T> {
        let node = self.node(key)?;
        match read(node) {
            Ok(value) => Some(value),
            Err(invalid) => {
                self.report(key, &invalid);
                None
            }
        }
    }

    /// As [`get`](Self::get), reporting a missing value too.
    pub fn required<T>(
        &mut self,
        key: &str,
        example: &str,
        read: impl FnOnce(&'n Node) -> Result<T, Invalid>,
    ) -> Option<T> {
        if !self.contains(key) {
            self.missing(key, example);
            return None;
        }
        self.get(key, read)
    }

    /// A duration within `range`; `default` when not set (or refused).
    pub fn duration(&mut self, key: &str, default: Duration, range: Range<Duration>) -> Duration {
        self.get(key, |n| value::duration(n, range))
            .unwrap_or(default)
    }

    /// A duration within `range`, or `None` when not set.
    pub fn optional_duration(&mut self, key: &str, range: Range<Duration>) -> Option<Duration> {
        self.get(key, |n| value::duration(n, range))
    }

    /// A size in bytes within `range`; `default` when not set (or refused).
    pub fn size(&mut self, key: &str, default: u64, range: Range<u64>) -> u64 {
        self.get(key, |n| value::size(n, range)).unwrap_or(default)
    }

    /// A whole number within `range`; `default` when not set (or refused).
    pub fn count<T: Count>(&mut self, key: &str, default: T, range: Range<T>) -> T {
        self.get(key, |n| value::count(n, range)).unwrap_or(default)
    }

    /// A number within `range`, such as a fraction between 0 and 1.
    pub fn fraction(&mut self, key: &str, default: f64, range: Range<f64>) -> f64 {
        self.get(key, |n| value::fraction(n, range))
            .unwrap_or(default)
    }

    /// Text as written (`${…}` is not expanded).
    pub fn text(&mut self, key: &str) -> Option<String> {
        self.get(key, |n| value::text(n).map(str::to_string))
    }

    /// Text in which `${NAME}` is replaced from the environment.
    pub fn env_text(&mut self, key: &str) -> Option<EnvText> {
        self.get(key, value::env_text)
    }

    /// A secret (`${NAME}` replaced from the environment), never printed.
    pub fn secret(&mut self, key: &str) -> Option<Secret> {
        self.get(key, value::secret)
    }

    /// One of `choices` by name; `default` when not set (or refused).
    pub fn choice<T: Copy>(&mut self, key: &str, default: T, choices: &[(&str, T)]) -> T {
        self.get(key, |n| value::choice(n, choices))
            .unwrap_or(default)
    }

    /// A list, each item read with `read`; `None` when not set. Refused items are reported and
    /// left out.
    pub fn list<T>(
        &mut self,
        key: &str,
        mut read: impl FnMut(&'n Node) -> Result<T, Invalid>,
    ) -> Option<Vec<T>> {
        let node = self.node(key)?;
        let Some(items) = node.as_seq() else {
            let invalid = Invalid::new(node, format!("must be a list, found {}", node.kind_name()));
            self.report(key, &invalid);
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match read(item) {
                Ok(value) => out.push(value),
                Err(invalid) => self.report(&format!("{key}[{i}]"), &invalid),
            }
        }
        Some(out)
    }

    /// The entries of a mapping under `key` whose keys are names (of plugins, headers, …):
    /// `(name, key node, value node)`. Non-text and duplicate names are reported and left out.
    pub fn entries(&mut self, key: &str) -> Vec<(&'n str, &'n Node, &'n Node)> {
        let Some(node) = self.node(key) else {
            return Vec::new();
        };
        let Some(map) = node.as_map() else {
            let invalid = Invalid::new(
                node,
                format!("must be a mapping of names, found {}", node.kind_name()),
            );
            self.report(key, &invalid);
            return Vec::new();
        };
        let mut out: Vec<(&'n str, &'n Node, &'n Node)> = Vec::with_capacity(map.len());
        for (name, value) in map {
            let Some(text) = name.as_str() else {
                let invalid = Invalid::new(
                    name,
                    format!("has a name that is {}, not text", name.kind_name()),
                );
                self.report(key, &invalid);
                continue;
            };
            if let Some((_, first, _)) = out.iter().find(|(n, ..)| *n == text) {
                let message = format!(
                    "has `{text}` twice (first at line {}); remove one",
                    first.position.line
                );
                self.report(key, &Invalid::new(name, message));
                continue;
            }
            out.push((text, name, value));
        }
        out
    }

    /// A mapping of names to values read with `read` (`headers: { identifier: … }`); `None`
    /// when not set. Refused values are reported and left out.
    pub fn map<T>(
        &mut self,
        key: &str,
        mut read: impl FnMut(&'n str, &'n Node) -> Result<T, Invalid>,
    ) -> Option<Vec<(String, T)>> {
        self.node(key)?;
        let mut out = Vec::new();
        for (name, _, node) in self.entries(key) {
            match read(name, node) {
                Ok(value) => out.push((name.to_string(), value)),
                Err(invalid) => self.report(&format!("{key}.{name}"), &invalid),
            }
        }
        Some(out)
    }

    /// Reads the nested section under `key` (known keys `keys`) with `read`; an absent section
    /// reads as an empty one, so its settings take their defaults.
    pub fn section<T>(
        &mut self,
        key: &str,
        keys: &[&str],
        read: impl FnOnce(&mut Section<'n, '_, 'f>) -> T,
    ) -> T {
        let node = self.node(key);
        let path = self.key_path(key);
        let mut section = Section::open(node, self.node, &path, keys, &mut *self.diags);
        let value = read(&mut section);
        let errors = section.errors;
        self.errors += errors;
        value
    }

    /// Reads any node as a section named `path`, counting its problems as this section's:
    /// for the entries of [`entries`](Self::entries).
    pub fn nested<T>(
        &mut self,
        node: &'n Node,
        path: &str,
        keys: &[&str],
        read: impl FnOnce(&mut Section<'n, '_, 'f>) -> T,
    ) -> T {
        let mut section = Section::read(node, path, keys, &mut *self.diags);
        let value = read(&mut section);
        let errors = section.errors;
        self.errors += errors;
        value
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn read<T>(text: &str, f: impl FnOnce(&mut Section<'_, '_, '_>) -> T) -> (T, Vec<String>) {
        let root = crate::yaml::parse(text).unwrap();
        let mut diags = Diagnostics::new(Path::new("f.yaml"));
        let value = {
            let mut section =
                Section::read(&root, "p", &["a", "b", "list", "map", "sub"], &mut diags);
            f(&mut section)
        };
        let found = diags.into_vec().iter().map(ToString::to_string).collect();
        (value, found)
    }

    #[test]
    fn a_section_counts_the_problems_of_the_sections_read_from_it() {
        let ((errors, ok, ttl), found) = read("sub:\n  ttl: 99d\n  tll: 1s\n", |s| {
            let ttl = s.section("sub", &["ttl"], |sub| {
                sub.duration(
                    "ttl",
                    Duration::ZERO,
                    Range::new(Duration::ZERO, Duration::from_secs(86_400)),
                )
            });
            (s.errors(), s.is_ok(), ttl)
        });
        assert_eq!((errors, ok, ttl), (2, false, Duration::ZERO));
        assert_eq!(
            found,
            [
                "f.yaml:2:8: `p.sub.ttl` is 99d; it must be between 0s and 1d",
                "f.yaml:3:3: unknown key `tll` in `p.sub`; did you mean `ttl`?",
            ]
        );
    }

    #[test]
    fn lists_maps_and_missing_keys_name_the_item() {
        let ((list, map), found) = read("list: [1, x, 3]\nmap: { a: 1, b: [] }\n", |s| {
            let list = s.list("list", |n| value::count(n, Range::new(0u32, 10)));
            let map = s.map("map", |_, n| value::text(n).map(str::to_string));
            s.required("a", "1", value::text);
            (list, map)
        });
        assert_eq!(list, Some(vec![1, 3]));
        assert_eq!(map, Some(vec![("a".to_string(), "1".to_string())]));
        assert_eq!(
            found,
            [
                "f.yaml:1:1: `p` needs `a`; add `a: 1` to it",
                "f.yaml:1:11: `p.list[1]` is `x`, not a whole number; write e.g. 10",
                "f.yaml:2:17: `p.map.b` must be text, found a list",
            ]
        );
    }

    #[test]
    fn an_unset_variable_is_reported_at_the_reference_even_in_a_block() {
        let (_, found) = read(
            "a: |\n  first line\n  token ${BELROUTE_SETTINGS_TEST_UNSET}\n",
            |s| s.env_text("a"),
        );
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with(
                "f.yaml:3:9: `p.a`: environment variable BELROUTE_SETTINGS_TEST_UNSET is not set"
            ),
            "{found:?}"
        );
        let ((text, missing), found) = read("a: x${BELROUTE_SETTINGS_TEST_UNSET}\n", |s| {
            tolerating_missing_env(|| s.env_text("a"))
        });
        assert_eq!(
            text,
            Some(EnvText::plain("x${BELROUTE_SETTINGS_TEST_UNSET}"))
        );
        assert_eq!(missing, ["BELROUTE_SETTINGS_TEST_UNSET"]);
        assert!(found.is_empty(), "{found:?}");
    }
}
