//! Durations and sizes as operators write them (`2s`, `1500ms`, `5m`, `24h`, `7d`; `64KiB`,
//! `1MiB`), and the ranges they are checked against.
//!
//! Parsing never overflows: a value too large for a [`Duration`] or a `u64` is reported as out of
//! range, with the text as written, instead of wrapping or panicking.

use std::time::Duration;

/// The values a setting accepts (both ends included), and why, when that is not obvious.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range<T> {
    pub min: T,
    pub max: T,
    /// Said after the range in a message: "(below 1s, the shortest rule set timeout)".
    pub why: Option<&'static str>,
}

impl<T: Copy + PartialOrd> Range<T> {
    pub const fn new(min: T, max: T) -> Self {
        Range {
            min,
            max,
            why: None,
        }
    }

    /// The same range, with the reason for it shown in messages.
    pub const fn because(self, why: &'static str) -> Self {
        Range {
            min: self.min,
            max: self.max,
            why: Some(why),
        }
    }

    pub fn contains(&self, value: T) -> bool {
        self.min <= value && value <= self.max
    }
}

/// "it must be between 0s and 30d (why)", the end of every out-of-range message.
pub(crate) fn must_be_between(min: &str, max: &str, why: Option<&str>) -> String {
    let why = why.map(|w| format!(" ({w})")).unwrap_or_default();
    if min == max {
        format!("it must be {min}{why}")
    } else {
        format!("it must be between {min} and {max}{why}")
    }
}

pub(crate) const DURATION_EXAMPLES: &str = "2s, 1500ms, 5m, 24h or 7d";

/// A duration as written, before its range is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    Length(Duration),
    Negative,
    /// Longer than any [`Duration`].
    TooLong,
}

const UNITS: [(&[&str], u128); 9] = [
    (&["ns", "nsec"], 1),
    (&["us", "µs", "usec"], 1_000),
    (&["ms", "msec", "millis"], 1_000_000),
    (&["s", "sec", "secs", "second", "seconds"], 1_000_000_000),
    (&["m", "min", "mins", "minute", "minutes"], 60_000_000_000),
    (&["h", "hr", "hrs", "hour", "hours"], 3_600_000_000_000),
    (&["d", "day", "days"], 86_400_000_000_000),
    (&["w", "week", "weeks"], 604_800_000_000_000),
    (&["y", "year", "years"], 365 * 86_400_000_000_000),
];

fn unit_nanos(unit: &str) -> Option<u128> {
    UNITS
        .iter()
        .find(|(names, _)| names.contains(&unit))
        .map(|(_, nanos)| *nanos)
}

/// Reads `2s`, `1500ms`, `1h30m`, `0.5s`, or a bare number of seconds. The error says what is
/// wrong with the text (the caller names the setting).
pub(crate) fn read_duration(text: &str) -> Result<Written, String> {
    let trimmed = text.trim();
    let (negative, mut rest) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    if rest.is_empty() {
        return Err("it is empty".into());
    }
    let mut total: u128 = 0;
    let mut parts = 0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_end);
        if number.is_empty() {
            return Err(format!(
                "expected a number before `{}`",
                after.chars().next().unwrap_or(' ')
            ));
        }
        let after = after.trim_start();
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c.is_whitespace() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let per_unit = if unit.is_empty() {
            if parts > 0 || !after.trim().is_empty() {
                return Err(format!("`{number}` has no unit"));
            }
            1_000_000_000 // a bare number is seconds
        } else {
            unit_nanos(unit).ok_or_else(|| format!("unknown unit `{unit}`"))?
        };
        total = total.saturating_add(scaled(number, per_unit)?);
        parts += 1;
        rest = after.trim_start();
    }
    if negative && total > 0 {
        return Ok(Written::Negative);
    }
    let max = Duration::MAX.as_nanos();
    if total > max {
        return Ok(Written::TooLong);
    }
    let secs = u64::try_from(total / 1_000_000_000).unwrap_or(u64::MAX);
    let nanos = u32::try_from(total % 1_000_000_000).unwrap_or(0);
    Ok(Written::Length(Duration::new(secs, nanos)))
}

/// `number` (digits, perhaps a fraction) times `per_unit` nanoseconds, saturating.
fn scaled(number: &str, per_unit: u128) -> Result<u128, String> {
    let digits: String = number.chars().filter(|c| *c != '_').collect();
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (digits.as_str(), ""),
    };
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(format!("`{number}` is not a number"));
    }
    let mut value: u128 = 0;
    for digit in whole.bytes() {
        value = value
            .saturating_mul(10)
            .saturating_add(u128::from(digit - b'0'));
    }
    let mut total = value.saturating_mul(per_unit);
    // Nanoseconds are the finest unit: more than 18 fraction digits cannot matter.
    let mut scale = per_unit;
    for digit in fraction.bytes().take(18) {
        scale /= 10;
        total = total.saturating_add(u128::from(digit - b'0') * scale);
    }
    Ok(total)
}

/// Parses a duration: `2s`, `1500ms`, `5m`, `24h`, `7d` (also `1h30m`, `0.5s`, and `w`, `y`);
/// a bare number is seconds. Every duration setting and rule file `timeout` is read with this.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    match read_duration(text) {
        Ok(Written::Length(d)) => Ok(d),
        Ok(Written::Negative) => Err(format!("`{text}` is negative; a duration is 0s or more")),
        Ok(Written::TooLong) => Err(format!(
            "`{text}` is longer than any duration belroute can use"
        )),
        Err(why) => Err(format!(
            "`{text}` is not a duration ({why}); write e.g. {DURATION_EXAMPLES}"
        )),
    }
}

/// A duration the way it is best written back: `250ms`, `30s`, `5m`, `7d`, `1h30m`.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let nanos = d.as_nanos();
    if !nanos.is_multiple_of(1_000_000) {
        return if nanos.is_multiple_of(1_000) {
            format!("{}us", nanos / 1_000)
        } else {
            format!("{nanos}ns")
        };
    }
    let millis = nanos / 1_000_000;
    if !millis.is_multiple_of(1000) {
        return format!("{millis}ms");
    }
    let mut secs = millis / 1000;
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

pub(crate) const SIZE_EXAMPLES: &str = "65536, 64KiB or 1MiB";

const SIZE_UNITS: [(&[&str], u128); 4] = [
    (&["", "B"], 1),
    (&["KiB", "KB", "kB", "K", "k"], 1 << 10),
    (&["MiB", "MB", "M"], 1 << 20),
    (&["GiB", "GB", "G"], 1 << 30),
];

/// A size as written, before its range is checked: bytes, or `None` when negative; saturated
/// at `u128::MAX` when absurdly large.
pub(crate) fn read_size(text: &str) -> Result<Option<u128>, String> {
    let trimmed = text.trim();
    let (negative, rest) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    let split = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '_'))
        .unwrap_or(rest.len());
    let (number, unit) = rest.split_at(split);
    if number.is_empty() {
        return Err("it does not start with a number".into());
    }
    let unit = unit.trim();
    let factor = SIZE_UNITS
        .iter()
        .find(|(names, _)| names.contains(&unit))
        .map(|(_, factor)| *factor)
        .ok_or_else(|| format!("unknown unit `{unit}`; use B, KiB, MiB or GiB"))?;
    let bytes = scaled(number, factor)?;
    Ok(if negative && bytes > 0 {
        None
    } else {
        Some(bytes)
    })
}

/// Parses a size: `65536` (bytes), `64KiB`, `1MiB`; `KB`, `K` and `k` mean KiB too (1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    match read_size(text) {
        Ok(Some(bytes)) => u64::try_from(bytes).map_err(|_| format!("`{text}` is too large")),
        Ok(None) => Err(format!("`{text}` is negative")),
        Err(why) => Err(format!(
            "`{text}` is not a size ({why}); write e.g. {SIZE_EXAMPLES}"
        )),
    }
}

/// A size the way it is best written back: `64KiB`, `1MiB`, `1000B`.
pub fn format_size(bytes: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn durations_as_operators_write_them() {
        let table: &[(&str, Duration)] = &[
            ("2s", ms(2000)),
            ("1500ms", ms(1500)),
            ("5m", ms(300_000)),
            ("24h", ms(86_400_000)),
            ("7d", ms(7 * 86_400_000)),
            ("2", ms(2000)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("1h30m", ms(5_400_000)),
            ("1h 30m", ms(5_400_000)),
            ("0.5s", ms(500)),
            ("1.5", ms(1500)),
            ("2 s", ms(2000)),
            ("10min", ms(600_000)),
            ("1_000ms", ms(1000)),
            ("1w", ms(7 * 86_400_000)),
            ("1y", ms(365 * 86_400_000)),
            ("250us", Duration::from_micros(250)),
            ("-0s", Duration::ZERO),
        ];
        for (text, want) in table {
            assert_eq!(parse_duration(text), Ok(*want), "{text}");
        }
    }

    #[test]
    fn bad_durations_say_what_is_wrong() {
        let table: &[(&str, &str)] = &[
            (
                "fast",
                "`fast` is not a duration (expected a number before `f`); write e.g. 2s, 1500ms, 5m, 24h or 7d",
            ),
            ("5x", "`5x` is not a duration (unknown unit `x`)"),
            ("", "is not a duration (it is empty)"),
            ("1h 30", "`30` has no unit"),
            ("1..5s", "`1..5` is not a number"),
            ("-1s", "`-1s` is negative"),
            (
                "1000000000000y",
                "`1000000000000y` is longer than any duration",
            ),
            ("18446744073709551616s", "longer than any duration"),
            (
                "99999999999999999999999999999999999999999999d",
                "longer than any duration",
            ),
        ];
        for (text, want) in table {
            let got = parse_duration(text).unwrap_err();
            assert!(got.contains(want), "{text}: {got}");
        }
        // Absurd but representable: only a setting's range refuses it.
        assert_eq!(
            parse_duration("100000000y"),
            Ok(Duration::from_secs(100_000_000 * 365 * 86_400))
        );
        // The largest Duration itself still parses: the check is exact, not approximate.
        assert_eq!(
            parse_duration(&format!("{}s", u64::MAX)),
            Ok(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn durations_format_back_as_written() {
        for text in [
            "0s", "250ms", "30s", "5m", "7d", "1h30m", "1d1s", "250us", "7ns",
        ] {
            assert_eq!(
                format_duration(parse_duration(text).unwrap()),
                text,
                "{text}"
            );
        }
    }

    #[test]
    fn sizes() {
        let table: &[(&str, Result<u64, &str>)] = &[
            ("65536", Ok(65536)),
            ("64KiB", Ok(65536)),
            ("64 KiB", Ok(65536)),
            ("64k", Ok(65536)),
            ("1MiB", Ok(1 << 20)),
            ("1M", Ok(1 << 20)),
            ("2GiB", Ok(2 << 30)),
            ("100B", Ok(100)),
            ("1_000", Ok(1000)),
            ("64XB", Err("unknown unit `XB`")),
            ("KiB", Err("does not start with a number")),
            ("-1", Err("is negative")),
            ("18446744073709551615GiB", Err("is too large")),
        ];
        for (text, want) in table {
            match (parse_size(text), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{text}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{text}: {got}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
        assert_eq!(format_size(65536), "64KiB");
        assert_eq!(format_size(1 << 20), "1MiB");
        assert_eq!(format_size(1000), "1000B");
    }
}
