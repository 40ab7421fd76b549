//! Setting values shared by the server's configuration and plugins: durations, and text or
//! secrets that come from the environment as `${NAME}`.

use std::cell::RefCell;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

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

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = expanded(d)?;
        if text.is_empty() {
            return Err(serde::de::Error::custom("a secret must not be empty"));
        }
        Ok(Secret(text))
    }
}

/// Text in which `${NAME}` is replaced by environment variable `NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvText(pub String);

impl<'de> Deserialize<'de> for EnvText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        expanded(d).map(EnvText)
    }
}

fn expanded<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    expand_env(&text, |name| {
        std::env::var(name).ok().or_else(|| {
            // `belroute check` on a machine without production secrets: note, don't fail.
            MISSING.with(|missing| {
                let mut missing = missing.borrow_mut();
                let list = missing.as_mut()?;
                list.push(name.to_string());
                Some(format!("${{{name}}}"))
            })
        })
    })
    .map_err(serde::de::Error::custom)
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

/// Variables found missing so far inside [`tolerating_missing_env`].
pub fn missing_so_far() -> usize {
    MISSING.with(|m| m.borrow().as_ref().map_or(0, Vec::len))
}

/// Replaces every `${NAME}` with the variable's value; a missing variable is an error naming it.
pub fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("`${{` without a closing `}}` in `{text}`"));
        };
        let name = &after[..end];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!(
                "`${{{name}}}` is not a variable name; use letters, digits and _"
            ));
        }
        match lookup(name) {
            Some(value) => out.push_str(&value),
            None => {
                return Err(format!(
                    "environment variable {name} is not set (used as ${{{name}}}); set it or remove the reference"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A duration written `250ms`, `2s`.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    crate::ruleset::parse_duration(&text).map_err(serde::de::Error::custom)
}

/// An optional duration written `250ms`, `2s`.
pub fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}
