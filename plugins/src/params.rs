//! The values a plugin may put into a request: the caller's normalised forms and the call's
//! fields, by name. URL templates write them `{caller_e164}`, SQL queries `:caller_e164`.

use belroute_engine::LookupRequest;

/// Every `caller_*` name, with what it gives for +31 15 202 6057.
pub const CALLER_PARAMS: [(&str, &str); 7] = [
    ("caller_e164", "+31152026057"),
    ("caller_national", "0152026057"),
    ("caller_digits", "31152026057"),
    ("caller_international", "+31 15 202 6057"),
    ("caller_last9", "152026057"),
    ("caller_country", "NL"),
    ("caller_raw", "the number as Callvoip sent it"),
];

/// Is `name` one of the forms of the caller's *number* (not `caller_raw`, the text as
/// received, and not a call field)? A question using one needs a usable number.
pub fn is_number_param(name: &str) -> bool {
    name.starts_with("caller_") && name != "caller_raw"
}

/// Checks a parameter name: a known `caller_*` name, or `call_<field>` for any call field.
pub fn check_name(name: &str) -> Result<(), String> {
    if CALLER_PARAMS.iter().any(|(known, _)| *known == name) {
        return Ok(());
    }
    if let Some(field) = name.strip_prefix("call_")
        && !field.is_empty()
    {
        return Ok(());
    }
    let known: Vec<&str> = CALLER_PARAMS.iter().map(|(n, _)| *n).collect();
    let hint = belroute_engine::diagnostic::suggestion(name, known.iter().copied())
        .map(|s| format!("did you mean {s}? "))
        .unwrap_or_default();
    Err(format!(
        "unknown parameter `{name}`; {hint}use one of {} or call_<field> (e.g. call_dp_id)",
        known.join(", ")
    ))
}

/// The value of parameter `name` for this call; empty when the caller has no such form
/// (an anonymous or invalid number) or the call has no such field.
pub fn value(request: &LookupRequest, name: &str) -> String {
    let caller = &request.caller;
    match name {
        "caller_e164" => caller.e164.clone(),
        "caller_national" => caller.national.clone(),
        "caller_digits" => caller.digits.clone(),
        "caller_international" => caller.international.clone(),
        "caller_country" => caller.country.clone(),
        "caller_raw" => caller.raw.clone(),
        "caller_last9" => last_digits(
            if caller.valid {
                &caller.national
            } else {
                &caller.raw
            },
            9,
        ),
        other => other
            .strip_prefix("call_")
            .map(|field| request.call.get(field).to_string())
            .unwrap_or_default(),
    }
}

fn last_digits(text: &str, n: usize) -> String {
    let digits: Vec<char> = text.chars().filter(char::is_ascii_digit).collect();
    digits[digits.len().saturating_sub(n)..].iter().collect()
}

/// A text with `{name}` placeholders (URL templates, JSON body strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Param(String),
}

impl Template {
    /// Reads `{caller_*}` and `{call_*}` placeholders; other braces stay text (JSON, say).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let name_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let name = &after[..name_len];
            let is_param = after[name_len..].starts_with('}')
                && (name.starts_with("caller_") || name.starts_with("call_"));
            if !is_param {
                parts.push(Part::Text(rest[..=open].to_string()));
                rest = after;
                continue;
            }
            check_name(name)?;
            parts.push(Part::Text(rest[..open].to_string()));
            parts.push(Part::Param(name.to_string()));
            rest = &after[name_len + 1..];
        }
        parts.push(Part::Text(rest.to_string()));
        parts.retain(|p| !matches!(p, Part::Text(t) if t.is_empty()));
        Ok(Template { parts })
    }

    /// The text with each placeholder replaced by `encode(value)`.
    pub fn render(&self, request: &LookupRequest, encode: impl Fn(&str) -> String) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Param(name) => out.push_str(&encode(&value(request, name))),
            }
        }
        out
    }

    /// The template with every placeholder replaced by `x`, to validate its shape at start-up.
    pub fn sample(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.as_str(),
                Part::Param(_) => "x",
            })
            .collect()
    }

    pub fn has_params(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Param(_)))
    }

    /// Does the text use the caller's number (any `{caller_*}` but `{caller_raw}`)?
    pub fn reads_number(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Param(name) if is_number_param(name)))
    }
}

/// An SQL query with `:name` parameters rewritten to the driver's placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlQuery {
    /// The query as the driver takes it.
    pub sql: String,
    /// The parameter bound to each placeholder, in order.
    pub binds: Vec<String>,
}

/// How a driver writes positional placeholders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholders {
    /// `?` each time (MySQL, MariaDB, SQLite).
    Question,
    /// `$1`, `$2`, … with repeats reusing their number (PostgreSQL).
    Dollar,
}

impl SqlQuery {
    /// Finds `:name` parameters outside strings, quoted names, comments and `::` casts.
    pub fn parse(query: &str, style: Placeholders) -> Result<Self, String> {
        let bytes = query.as_bytes();
        let mut sql = String::with_capacity(query.len());
        let mut binds: Vec<String> = Vec::new();
        let mut i = 0;
        let mut copied = 0;
        while i < bytes.len() {
            match bytes[i] {
                quote @ (b'\'' | b'"' | b'`') => {
                    i += 1;
                    while i < bytes.len() && bytes[i] != quote {
                        i += 1;
                    }
                    i += 1;
                }
                b'-' if bytes.get(i + 1) == Some(&b'-') => {
                    while i < bytes.len() && bytes[i] != b'\n' {
                        i += 1;
                    }
                }
                b'/' if bytes.get(i + 1) == Some(&b'*') => {
                    i += 2;
                    while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                        i += 1;
                    }
                    i += 2;
                }
                b':' if bytes.get(i + 1) == Some(&b':') => i += 2,
                b':' if bytes
                    .get(i + 1)
                    .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_') =>
                {
                    let start = i + 1;
                    let mut end = start;
                    while end < bytes.len()
                        && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_')
                    {
                        end += 1;
                    }
                    let name = &query[start..end];
                    check_name(name)?;
                    sql.push_str(&query[copied..i]);
                    match style {
                        Placeholders::Question => {
                            sql.push('?');
                            binds.push(name.to_string());
                        }
                        Placeholders::Dollar => {
                            let n = match binds.iter().position(|b| b == name) {
                                Some(existing) => existing + 1,
                                None => {
                                    binds.push(name.to_string());
                                    binds.len()
                                }
                            };
                            sql.push_str(&format!("${n}"));
                        }
                    }
                    i = end;
                    copied = end;
                }
                _ => i += 1,
            }
        }
        sql.push_str(&query[copied.min(query.len())..]);
        if binds.is_empty() {
            return Err("the query uses no parameter such as :caller_e164, so every caller would get the same facts".into());
        }
        Ok(SqlQuery { sql, binds })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use belroute_engine::{Call, Normaliser};
    use std::sync::Arc;

    fn request(number: &str) -> LookupRequest {
        let call = Call::from_pairs([("caller_number", number), ("dp_id", "d1")]);
        LookupRequest {
            caller: Normaliser::default().normalise(number),
            call: Arc::new(call),
        }
    }

    #[test]
    fn values_for_a_dutch_number() {
        let r = request("31152026057");
        for (name, expected) in [
            ("caller_e164", "+31152026057"),
            ("caller_national", "0152026057"),
            ("caller_digits", "31152026057"),
            ("caller_last9", "152026057"),
            ("caller_country", "NL"),
            ("call_dp_id", "d1"),
            ("call_missing", ""),
        ] {
            assert_eq!(value(&r, name), expected, "{name}");
        }
    }

    #[test]
    fn templates_find_only_known_placeholders() {
        let t = Template::parse("https://crm/x?phone={caller_e164}&dp={call_dp_id}&j={\"a\":1}")
            .unwrap();
        let url = t.render(&request("31152026057"), |v| v.replace('+', "%2B"));
        assert_eq!(url, "https://crm/x?phone=%2B31152026057&dp=d1&j={\"a\":1}");
        let err = Template::parse("https://crm/{caller_e16}").unwrap_err();
        assert!(
            err.contains("unknown parameter `caller_e164`")
                || err.contains("did you mean `caller_e164`"),
            "{err}"
        );
    }

    #[test]
    fn sql_parameters_by_driver() {
        let q = "SELECT ':not_a_param', a::text, \"x:y\" FROM t -- :comment\nWHERE p = :caller_e164 OR q = :caller_last9 OR r = :caller_e164 /* :c */";
        let mysql = SqlQuery::parse(q, Placeholders::Question).unwrap();
        assert_eq!(mysql.binds, ["caller_e164", "caller_last9", "caller_e164"]);
        assert!(
            mysql
                .sql
                .ends_with("WHERE p = ? OR q = ? OR r = ? /* :c */"),
            "{}",
            mysql.sql
        );
        assert!(
            mysql
                .sql
                .starts_with("SELECT ':not_a_param', a::text, \"x:y\" FROM t -- :comment\n")
        );
        let pg = SqlQuery::parse(q, Placeholders::Dollar).unwrap();
        assert_eq!(pg.binds, ["caller_e164", "caller_last9"]);
        assert!(
            pg.sql
                .ends_with("WHERE p = $1 OR q = $2 OR r = $1 /* :c */"),
            "{}",
            pg.sql
        );
        assert!(SqlQuery::parse("SELECT 1", Placeholders::Question).is_err());
        assert!(
            SqlQuery::parse("SELECT :calller_e164", Placeholders::Question)
                .unwrap_err()
                .contains("did you mean")
        );
    }
}
