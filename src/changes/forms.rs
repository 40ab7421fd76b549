//! The two commonest changes as forms, for people who do not write YAML: the opening hours of
//! an `open_hours("…")` rule and the `holidays` list. Each edit changes only those values: every
//! other byte of the file (comments, order, layout, line endings) stays as it was.

use chrono::NaiveDate;

use belroute_engine::OfficeHours;

/// One `open_hours("…")` written in a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoursSpot {
    /// The rule it is in (the nearest `- name:` above it), for the form's label.
    pub rule: Option<String>,
    pub line: usize,
    /// The spec as written between the quotes.
    pub spec: String,
    /// Byte range of the spec in the file.
    range: std::ops::Range<usize>,
}

/// Every `open_hours("…")` with a literal spec, in file order.
pub fn opening_hours(text: &str) -> Vec<HoursSpot> {
    let mut spots = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("open_hours(") {
        let call = from + found;
        let mut at = call + "open_hours(".len();
        from = at;
        at += text[at..].len() - text[at..].trim_start_matches([' ', '\t']).len();
        if !text[at..].starts_with('"') {
            continue;
        }
        let start = at + 1;
        let Some(len) = text[start..].find(['"', '\n', '\\']) else {
            continue;
        };
        if !text[start + len..].starts_with('"') {
            continue;
        }
        let line = text[..call].matches('\n').count() + 1;
        spots.push(HoursSpot {
            rule: rule_above(&text[..call]),
            line,
            spec: text[start..start + len].to_string(),
            range: start..start + len,
        });
        from = start + len + 1;
    }
    spots
}

/// The name of the rule whose `- name:` is the last one before `before`.
fn rule_above(before: &str) -> Option<String> {
    before.lines().rev().find_map(|line| {
        let rest = line.trim_start().strip_prefix('-')?.trim_start();
        let name = rest.strip_prefix("name:")?.trim();
        let name = name.split(" #").next().unwrap_or(name).trim();
        Some(name.trim_matches(['"', '\'']).to_string())
    })
}

/// Why a form's values cannot be written into the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("{0}")]
    Invalid(String),
    #[error("the file changed since the form was opened; open the form again")]
    Stale,
}

/// `text` with the specs of its `open_hours("…")` calls replaced by `specs` (one per spot, in
/// file order; an unchanged spec stays byte for byte).
pub fn set_opening_hours(text: &str, specs: &[String]) -> Result<String, FormError> {
    let spots = opening_hours(text);
    if spots.len() != specs.len() {
        return Err(FormError::Stale);
    }
    let mut out = text.to_string();
    for (spot, spec) in spots.iter().zip(specs).rev() {
        let spec = spec.trim();
        if spec == spot.spec {
            continue;
        }
        if spec.contains(['"', '\'', '\\', '\n', '\r', '`']) {
            return Err(FormError::Invalid(format!(
                "line {}: opening hours are days and times such as `mon-fri 08:30-17:30; sat 10:00-14:00`, without quotes or backslashes",
                spot.line
            )));
        }
        OfficeHours::parse(spec)
            .map_err(|e| FormError::Invalid(format!("line {}: {e}", spot.line)))?;
        out.replace_range(spot.range.clone(), spec);
    }
    Ok(out)
}

/// One day off of the `holidays` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holiday {
    pub date: NaiveDate,
    /// `None`: written without a name (`holiday`).
    pub name: Option<String>,
}

/// Where the `holidays` list is, and what it holds.
#[derive(Debug)]
struct HolidayList {
    /// The line of `holidays:` (1-based), if the key is there.
    key_line: Option<usize>,
    /// Each entry with its first line and the line after its last.
    items: Vec<(Holiday, usize, usize)>,
    /// Written `holidays: [ … ]` (or empty) on the key's line, not as a block list.
    inline: bool,
    /// The indentation of the block list's `-`.
    indent: String,
}

/// The lines of `text`, each with its line ending.
fn lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

fn read_list(text: &str) -> Result<HolidayList, FormError> {
    let root = belroute_engine::yaml::parse(text).map_err(|e| {
        FormError::Invalid(format!(
            "the file is not valid YAML ({e}); fix it in the editor first"
        ))
    })?;
    let Some(map) = root.as_map() else {
        return Err(FormError::Invalid(
            "the file is not a rule set (a mapping of keys); fix it in the editor first".into(),
        ));
    };
    let all = lines(text);
    let Some(index) = map.iter().position(|(k, _)| k.as_str() == Some("holidays")) else {
        return Ok(HolidayList {
            key_line: None,
            items: Vec::new(),
            inline: true,
            indent: "  ".into(),
        });
    };
    let (key, value) = &map[index];
    let key_line = key.position.line;
    // The list ends before the next top-level key, less trailing blank and comment lines.
    let next_key = map
        .get(index + 1)
        .map_or(all.len() + 1, |(k, _)| k.position.line);
    let mut end = next_key;
    while end > key_line + 1 {
        let line = all[end - 2].trim();
        if line.is_empty() || line.starts_with('#') {
            end -= 1;
        } else {
            break;
        }
    }
    let items_nodes = value.as_seq().unwrap_or_default();
    let inline = value.position.line == key_line;
    let mut items = Vec::new();
    for (i, node) in items_nodes.iter().enumerate() {
        let (date, name) = match node.as_map() {
            Some(entry) => {
                let get = |k: &str| {
                    entry
                        .iter()
                        .find(|(key, _)| key.as_str() == Some(k))
                        .and_then(|(_, v)| v.as_str())
                };
                (get("date"), get("name").map(str::to_string))
            }
            None => (node.as_str(), None),
        };
        let date = date
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .ok_or_else(|| {
                FormError::Invalid(format!(
                    "line {}: a holiday that is not a date; fix it in the editor first",
                    node.position.line
                ))
            })?;
        let first = node.position.line;
        let after = items_nodes.get(i + 1).map_or(end, |n| n.position.line);
        items.push((Holiday { date, name }, first, after));
    }
    let indent = items_nodes
        .first()
        .filter(|_| !inline)
        .and_then(|n| all.get(n.position.line - 1))
        .map(|line| line[..line.len() - line.trim_start().len()].to_string())
        .unwrap_or_else(|| "  ".into());
    Ok(HolidayList {
        key_line: Some(key_line),
        items,
        inline,
        indent,
    })
}

/// The `holidays` of a rule file, in file order.
pub fn holidays(text: &str) -> Result<Vec<Holiday>, FormError> {
    Ok(read_list(text)?
        .items
        .into_iter()
        .map(|(holiday, _, _)| holiday)
        .collect())
}

/// Reads the form's text: one day off per line, `YYYY-MM-DD` and an optional name.
pub fn parse_holidays(form: &str) -> Result<Vec<Holiday>, FormError> {
    let mut days: Vec<Holiday> = Vec::new();
    for (i, line) in form.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (date, name) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| {
            FormError::Invalid(format!(
                "line {} of the list: `{}` is not a date; write YYYY-MM-DD and a name, e.g. 2027-07-16 Bedrijfsuitje",
                i + 1,
                belroute_engine::text::escape(date)
            ))
        })?;
        if days.iter().any(|d| d.date == date) {
            return Err(FormError::Invalid(format!(
                "line {} of the list: {date} is listed twice",
                i + 1
            )));
        }
        let name = name.trim();
        if name.chars().any(char::is_control) || name.len() > 100 {
            return Err(FormError::Invalid(format!(
                "line {} of the list: a name is one line of at most 100 characters",
                i + 1
            )));
        }
        days.push(Holiday {
            date,
            name: (!name.is_empty()).then(|| name.to_string()),
        });
    }
    Ok(days)
}

/// One entry as the form writes it: `- { date: 2027-07-16, name: Bedrijfsuitje }`.
fn entry_line(indent: &str, holiday: &Holiday, ending: &str) -> String {
    match &holiday.name {
        None => format!("{indent}- {}{ending}", holiday.date),
        Some(name) => format!(
            "{indent}- {{ date: {}, name: {} }}{ending}",
            holiday.date,
            yaml_text(name)
        ),
    }
}

/// A name as a YAML flow scalar: plain when that reads back the same, else double-quoted.
fn yaml_text(name: &str) -> String {
    let plain = name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '.' | '\'' | '(' | ')' | '/'))
        && name.chars().next().is_some_and(char::is_alphabetic)
        && !matches!(
            name.to_ascii_lowercase().as_str(),
            "yes" | "no" | "true" | "false" | "on" | "off" | "null"
        );
    if plain {
        name.to_string()
    } else {
        serde_json::to_string(name).unwrap_or_else(|_| format!("\"{name}\""))
    }
}

/// `text` with its `holidays` list set to `days`: entries kept as they were written stay byte
/// for byte (comments between them too), removed ones go, new ones are written in date order
/// among them. Nothing outside the list changes.
pub fn set_holidays(text: &str, days: &[Holiday]) -> Result<String, FormError> {
    let list = read_list(text)?;
    let all = lines(text);
    let ending = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut sorted: Vec<&Holiday> = days.iter().collect();
    sorted.sort_by_key(|d| d.date);
    if list.key_line.is_none() || list.inline {
        // Written anew as a block list: on the key's line, or before `rules:` (or at the end).
        let block = |comment: &str| {
            if sorted.is_empty() {
                return format!("holidays: []{comment}{ending}");
            }
            let mut block = format!("holidays:{comment}{ending}");
            for day in &sorted {
                block.push_str(&entry_line(&list.indent, day, ending));
            }
            block
        };
        let mut out = String::new();
        match list.key_line {
            Some(line) => {
                for (i, l) in all.iter().enumerate() {
                    if i + 1 == line {
                        // A comment after the inline list stays on the key's line.
                        let comment = l.find(" #").map_or("", |at| {
                            let start = l[..at].trim_end().len();
                            l[start..].trim_end()
                        });
                        out.push_str(&block(comment));
                    } else {
                        out.push_str(l);
                    }
                }
            }
            None => {
                let rules_at = all.iter().position(|l| l.starts_with("rules:"));
                for (i, l) in all.iter().enumerate() {
                    if Some(i) == rules_at {
                        out.push_str(&block(""));
                        out.push_str(ending);
                    }
                    out.push_str(l);
                }
                if rules_at.is_none() {
                    if !out.is_empty() && !out.ends_with('\n') {
                        out.push_str(ending);
                    }
                    out.push_str(&block(""));
                }
            }
        }
        return Ok(out);
    }
    let key_line = list.key_line.unwrap_or(1);
    let first_item = list
        .items
        .first()
        .map_or(key_line + 1, |(_, first, _)| *first);
    let last_end = list
        .items
        .last()
        .map_or(key_line + 1, |(_, _, after)| *after);
    let mut out = String::new();
    // Everything up to the first entry, as it was.
    for l in &all[..first_item - 1] {
        out.push_str(l);
    }
    let mut wanted = sorted.iter().peekable();
    for (holiday, first, after) in &list.items {
        // New days that come before this entry.
        while let Some(day) = wanted.peek() {
            if day.date < holiday.date && !list.items.iter().any(|(h, _, _)| h.date == day.date) {
                out.push_str(&entry_line(&list.indent, day, ending));
                wanted.next();
            } else {
                break;
            }
        }
        match days.iter().find(|d| d.date == holiday.date) {
            Some(day) if day == holiday => {
                for l in &all[first - 1..after - 1] {
                    out.push_str(l);
                }
            }
            Some(day) => out.push_str(&entry_line(&list.indent, day, ending)),
            None => {}
        }
        if wanted.peek().is_some_and(|d| d.date == holiday.date) {
            wanted.next();
        }
    }
    for day in wanted {
        if !list.items.iter().any(|(h, _, _)| h.date == day.date) {
            out.push_str(&entry_line(&list.indent, day, ending));
        }
    }
    for l in &all[(last_end - 1).min(all.len())..] {
        out.push_str(l);
    }
    if days.is_empty() {
        // `holidays:` with nothing under it reads as null, which is fine, but say it plainly.
        let mut fixed = String::new();
        for (i, l) in lines(&out).iter().enumerate() {
            if i + 1 == key_line {
                fixed.push_str(&l.replacen("holidays:", "holidays: []", 1));
            } else {
                fixed.push_str(l);
            }
        }
        out = fixed;
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FILE: &str = "# Hoofdnummer\r\ndefault: receptie   # when nothing matches\r\nholidays:            # and the company's own days off\r\n  - { date: 2026-12-25, name: Eerste Kerstdag }\r\n  # the day after\r\n  - date: 2026-12-26\r\n    name: Tweede Kerstdag\r\n  - 2027-01-01\r\n\r\n# the rules\r\nrules:\r\n  - name: Closed outside office hours\r\n    when: '!open_hours(\"mon-fri 08:30-17:30; sat 10:00-14:00\")'   # hours\r\n    route: gesloten\r\n  - name: Late on Friday\r\n    when: now().weekday == \"fri\" && open_hours( \"fri 17:30-20:00\")\r\n    route: laat\r\n";

    fn day(y: i32, m: u32, d: u32, name: Option<&str>) -> Holiday {
        Holiday {
            date: NaiveDate::from_ymd_opt(y, m, d).unwrap(),
            name: name.map(str::to_string),
        }
    }

    #[test]
    fn opening_hours_are_found_with_their_rule() {
        let spots = opening_hours(FILE);
        assert_eq!(spots.len(), 2);
        assert_eq!(
            spots[0].rule.as_deref(),
            Some("Closed outside office hours")
        );
        assert_eq!(spots[0].spec, "mon-fri 08:30-17:30; sat 10:00-14:00");
        assert_eq!(spots[0].line, 13);
        assert_eq!(spots[1].rule.as_deref(), Some("Late on Friday"));
        assert_eq!(spots[1].spec, "fri 17:30-20:00");
    }

    #[test]
    fn changing_the_hours_changes_only_the_hours() {
        let out = set_opening_hours(
            FILE,
            &[
                "mon-fri 08:30-16:00; sat 10:00-14:00".into(),
                "fri 17:30-20:00".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            FILE.replace("mon-fri 08:30-17:30; sat", "mon-fri 08:30-16:00; sat")
        );
        let bad = set_opening_hours(FILE, &["mon-fri 8-17".into(), "fri 17:30-20:00".into()]);
        assert!(
            matches!(&bad, Err(FormError::Invalid(m)) if m.starts_with("line 13: office hours `mon-fri 8-17`")),
            "{bad:?}"
        );
        let quote = set_opening_hours(FILE, &["mon\" + x".into(), "fri 17:30-20:00".into()]);
        assert!(matches!(quote, Err(FormError::Invalid(_))));
        assert_eq!(
            set_opening_hours(FILE, &["x".into()]),
            Err(FormError::Stale)
        );
    }

    #[test]
    fn holidays_are_read_in_every_form() {
        assert_eq!(
            holidays(FILE).unwrap(),
            [
                day(2026, 12, 25, Some("Eerste Kerstdag")),
                day(2026, 12, 26, Some("Tweede Kerstdag")),
                day(2027, 1, 1, None),
            ]
        );
    }

    #[test]
    fn a_day_added_and_one_removed_leave_every_other_byte() {
        let days = [
            day(2026, 12, 24, Some("Kerstavond")),
            day(2026, 12, 25, Some("Eerste Kerstdag")),
            day(2027, 1, 1, None),
            day(2027, 7, 16, Some("Bedrijfsuitje: zomer")),
        ];
        let out = set_holidays(FILE, &days).unwrap();
        let expected = FILE
            .replace(
                "  - { date: 2026-12-25",
                "  - { date: 2026-12-24, name: Kerstavond }\r\n  - { date: 2026-12-25",
            )
            .replace("  - date: 2026-12-26\r\n    name: Tweede Kerstdag\r\n", "")
            .replace(
                "  - 2027-01-01\r\n",
                "  - 2027-01-01\r\n  - { date: 2027-07-16, name: \"Bedrijfsuitje: zomer\" }\r\n",
            );
        // The comment between the first two entries went with the removed one's place? No:
        // it belongs to the first entry (it follows it), and stays.
        assert_eq!(out, expected);
        assert_eq!(holidays(&out).unwrap(), days);
        // Unchanged: byte for byte.
        assert_eq!(set_holidays(FILE, &holidays(FILE).unwrap()).unwrap(), FILE);
    }

    #[test]
    fn a_file_without_holidays_gets_the_list_before_its_rules() {
        let text = "default: x\n# rules below\nrules: []\n";
        let out = set_holidays(text, &[day(2027, 4, 27, Some("Koningsdag"))]).unwrap();
        assert_eq!(
            out,
            "default: x\n# rules below\nholidays:\n  - { date: 2027-04-27, name: Koningsdag }\n\nrules: []\n"
        );
        let inline = "default: x\nholidays: [2026-12-25]   # one day\nrules: []\n";
        let out =
            set_holidays(inline, &[day(2026, 12, 25, None), day(2026, 12, 26, None)]).unwrap();
        assert_eq!(
            out,
            "default: x\nholidays:   # one day\n  - 2026-12-25\n  - 2026-12-26\nrules: []\n"
        );
        assert_eq!(holidays(&out).unwrap().len(), 2);
        let none = set_holidays(FILE, &[]).unwrap();
        assert!(none.contains("holidays: []"), "{none}");
        assert!(holidays(&none).unwrap().is_empty());
    }

    #[test]
    fn the_form_reads_one_day_per_line() {
        assert_eq!(
            parse_holidays("2027-07-16 Bedrijfsuitje\n\n 2026-12-24\n").unwrap(),
            [
                day(2027, 7, 16, Some("Bedrijfsuitje")),
                day(2026, 12, 24, None)
            ]
        );
        assert!(parse_holidays("16-07-2027 uitje").is_err());
        assert!(parse_holidays("2027-07-16\n2027-07-16 x").is_err());
    }
}
