//! Text belroute did not write — call data, rule output, names in URLs — made safe to show:
//! escaped so it cannot forge a log line or move a terminal's cursor, shortened, and caller
//! numbers masked.

use std::fmt::Write as _;

/// Is `c` unsafe to print as is: a control character (line breaks, escape), a line or
/// paragraph separator, or an invisible format character (zero-width, bidi overrides)?
pub fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{2028}' | '\u{2029}'                 // line and paragraph separators
            | '\u{200b}'..='\u{200f}'               // zero-width and direction marks
            | '\u{202a}'..='\u{202e}'               // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}'               // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}'               // bidi isolates
            | '\u{feff}'                            // zero-width no-break space
            | '\u{00ad}'                            // soft hyphen
        )
}

/// `text` with every unprintable character written as `\n`, `\t`, `\r` or `\u{…}`.
pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(is_unprintable) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    std::borrow::Cow::Owned(out)
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if is_unprintable(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// `text` escaped and cut to at most `max` characters (then ending in `…`).
pub fn shorten(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 2));
    for (count, c) in text.chars().enumerate() {
        if count >= max {
            out.push('…');
            break;
        }
        push_escaped(&mut out, c);
    }
    out
}

/// Digits shown of a masked number: enough to recognise a caller, not to call them back.
pub const SHOWN_DIGITS: usize = 3;

/// Every run of 5 or more digits (a phone number, possibly written with `+`, spaces, dashes or
/// dots between the digits) with all but its last [`SHOWN_DIGITS`] digits replaced by `•`.
/// Shorter numbers (an extension, an hour, a count) and dates (`2026-12-07`, `07-12-2026`,
/// `2026/12/07`) stay as they are: a date is not personal, and a masked one reads as nothing.
pub fn mask_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // A number: digits, and separators that are followed by a digit.
        let start = i;
        let mut end = i;
        let mut digits = 0;
        while end < chars.len() {
            let c = chars[end];
            if c.is_ascii_digit() {
                digits += 1;
                end += 1;
            } else if matches!(c, ' ' | '-' | '.' | '/')
                && chars.get(end + 1).is_some_and(char::is_ascii_digit)
            {
                end += 1;
            } else {
                break;
            }
        }
        if digits < 5 || is_date(&chars[start..end]) {
            out.extend(&chars[start..end]);
        } else {
            let mut seen = 0;
            for &c in &chars[start..end] {
                if c.is_ascii_digit() {
                    seen += 1;
                    out.push(if seen > digits - SHOWN_DIGITS {
                        c
                    } else {
                        '•'
                    });
                } else {
                    out.push(c);
                }
            }
        }
        i = end;
    }
    out
}

/// `2026-12-07`, `07-12-2026`, `2026/12/07`, `07.12.2026`: digits in groups of 4-2-2 or
/// 2-2-4 with one kind of separator.
fn is_date(run: &[char]) -> bool {
    let text: String = run.iter().collect();
    let Some(separator) = run.iter().copied().find(|c| !c.is_ascii_digit()) else {
        return false;
    };
    let groups: Vec<usize> = text.split(separator).map(str::len).collect();
    matches!(separator, '-' | '/' | '.')
        && text
            .split(separator)
            .all(|g| g.bytes().all(|b| b.is_ascii_digit()))
        && (groups == [4, 2, 2] || groups == [2, 2, 4])
}

/// Text made safe for HTML and XML, in element content and in quoted attributes: the five
/// markup characters as entities, line breaks and tabs as character references (so an
/// attribute keeps them), and the control characters XML 1.0 cannot carry as U+FFFD.
pub fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_could_forge_a_line_or_hide() {
        assert_eq!(escape("main"), "main");
        assert_eq!(escape("a\nINFO forged"), "a\\nINFO forged");
        assert_eq!(escape("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(
            escape("x\u{2028}y\u{200b}z\u{202e}"),
            "x\\u{2028}y\\u{200b}z\\u{202e}"
        );
        assert_eq!(escape("café ☎"), "café ☎");
    }

    #[test]
    fn shortens_by_characters() {
        assert_eq!(shorten("abcdef", 3), "abc…");
        assert_eq!(shorten("ab", 3), "ab");
        assert_eq!(shorten("é\né", 10), "é\\né");
    }

    #[test]
    fn masks_phone_numbers_only() {
        assert_eq!(mask_numbers("+31152026057"), "+••••••••057");
        assert_eq!(
            mask_numbers("caller 015-2026057 at 10:00"),
            "caller •••-••••057 at 10:00"
        );
        assert_eq!(mask_numbers("ext 1003, 2 calls"), "ext 1003, 2 calls");
        assert_eq!(mask_numbers("+31 6 12345678"), "+•• • •••••678");
        assert_eq!(
            mask_numbers("last_agent_at 2026-12-07T07:35:00Z, 07-12-2026, 2026/12/07"),
            "last_agent_at 2026-12-07T07:35:00Z, 07-12-2026, 2026/12/07"
        );
        assert_eq!(mask_numbers("0152-02-6057"), "••••-••-•057");
    }
}
