//! Time: the call's local time as rules see it (office hours, holidays), and the call's
//! deadline, counted from its arrival.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{
    DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use tokio::time::Instant;

/// The zone rules are written in unless a rule set or `belroute.yaml` says otherwise.
pub const DEFAULT_TIME_ZONE: Tz = chrono_tz::Europe::Amsterdam;

/// Days the business is closed, with a name for traces ("Eerste Kerstdag"): dates written in
/// the rule set, company days (one date, or every year), and a country's public holidays
/// computed for any year, less the ones the company works.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holidays {
    days: BTreeMap<NaiveDate, String>,
    /// Every year on (month, day).
    yearly: BTreeMap<(u32, u32), String>,
    country: Option<crate::calendar::Country>,
    /// Public holidays the company works, by name.
    except: Vec<String>,
}

impl Holidays {
    pub fn insert(&mut self, date: NaiveDate, name: String) -> Option<String> {
        self.days.insert(date, name)
    }

    /// A day off every year on `month`-`day`.
    pub fn insert_yearly(&mut self, month: u32, day: u32, name: String) -> Option<String> {
        self.yearly.insert((month, day), name)
    }

    /// The public holidays of `country`, except those named in `except`.
    pub fn set_country(&mut self, country: crate::calendar::Country, except: Vec<String>) {
        self.country = Some(country);
        self.except = except;
    }

    /// The holiday's name, if `date` is one.
    pub fn name(&self, date: NaiveDate) -> Option<&str> {
        if let Some(name) = self.days.get(&date) {
            return Some(name);
        }
        if let Some(name) = self.yearly.get(&(date.month(), date.day())) {
            return Some(name);
        }
        self.country
            .and_then(|c| c.holiday(date))
            .filter(|name| !self.except.iter().any(|e| e == name))
    }

    /// The dates written out (not the yearly or computed ones).
    pub fn len(&self) -> usize {
        self.days.len()
    }

    /// Closed on no day at all.
    pub fn is_empty(&self) -> bool {
        self.days.is_empty() && self.yearly.is_empty() && self.country.is_none()
    }

    /// The last date written out, if any (for the "all in the past" warning).
    pub fn last_written(&self) -> Option<NaiveDate> {
        self.days.keys().next_back().copied()
    }

    /// Days off from `from` on, at most `count` of them, in date order (for the console and
    /// `init`'s notes).
    pub fn upcoming(&self, from: NaiveDate, count: usize) -> Vec<(NaiveDate, String)> {
        let mut found = Vec::new();
        let mut day = from;
        // Two years is more than any calendar's next `count` days need.
        for _ in 0..731 {
            if found.len() >= count {
                break;
            }
            if let Some(name) = self.name(day) {
                found.push((day, name.to_string()));
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        found
    }
}

/// A weekly schedule such as `mon-fri 08:30-17:30; sat 10:00-14:00`.
///
/// Clauses are separated by `;`. Each clause is a set of days (`mon`, `mon-fri`, `mon,wed`,
/// `daily`; Dutch `ma`…`zo` too) followed by one or more `HH:MM-HH:MM` ranges. A range includes
/// its start and excludes its end; `24:00` ends a range at midnight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficeHours {
    /// Minutes since midnight, `[start, end)`, per ISO weekday index (0 = Monday).
    ranges: [Vec<(u32, u32)>; 7],
}

/// Why an office-hours text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("office hours `{spec}`: {reason}")]
pub struct OfficeHoursError {
    pub spec: String,
    pub reason: String,
}

const DAYS: [(&str, &str); 7] = [
    ("mon", "ma"),
    ("tue", "di"),
    ("wed", "wo"),
    ("thu", "do"),
    ("fri", "vr"),
    ("sat", "za"),
    ("sun", "zo"),
];

impl OfficeHours {
    pub fn parse(spec: &str) -> Result<Self, OfficeHoursError> {
        let fail = |reason: String| OfficeHoursError {
            spec: spec.to_string(),
            reason,
        };
        let mut ranges: [Vec<(u32, u32)>; 7] = Default::default();
        for clause in spec.split(';').map(str::trim).filter(|c| !c.is_empty()) {
            let mut words = clause.split_whitespace();
            let days = words.next().ok_or_else(|| fail("empty clause".into()))?;
            let days = parse_days(days).map_err(fail)?;
            let mut any = false;
            for range in words {
                let (from, to) = parse_range(range).map_err(fail)?;
                for day in &days {
                    ranges[*day].push((from, to));
                }
                any = true;
            }
            if !any {
                return Err(fail(format!(
                    "`{clause}` has days but no time range such as 08:30-17:30"
                )));
            }
        }
        if ranges.iter().all(Vec::is_empty) {
            return Err(fail(
                "no opening hours given; write e.g. `mon-fri 08:30-17:30`".into(),
            ));
        }
        Ok(OfficeHours { ranges })
    }

    /// Is `at` inside the schedule (ignoring holidays)?
    pub fn contains(&self, at: &DateTime<Tz>) -> bool {
        let minute = at.hour() * 60 + at.minute();
        let day = at.weekday().num_days_from_monday() as usize;
        self.ranges[day]
            .iter()
            .any(|&(from, to)| from <= minute && minute < to)
    }
}

fn day_index(word: &str) -> Option<usize> {
    let lower = word.to_ascii_lowercase();
    DAYS.iter().position(|(en, nl)| {
        lower == *en || lower == *nl || (lower.len() > 3 && en_full(en) == lower)
    })
}

fn en_full(short: &str) -> &'static str {
    match short {
        "mon" => "monday",
        "tue" => "tuesday",
        "wed" => "wednesday",
        "thu" => "thursday",
        "fri" => "friday",
        "sat" => "saturday",
        _ => "sunday",
    }
}

fn parse_days(text: &str) -> Result<Vec<usize>, String> {
    if matches!(
        text.to_ascii_lowercase().as_str(),
        "daily" | "dagelijks" | "all"
    ) {
        return Ok((0..7).collect());
    }
    let mut days = Vec::new();
    for part in text.split(',') {
        let unknown = |w: &str| {
            format!("unknown day `{w}`; use mon, tue, wed, thu, fri, sat, sun (or ma…zo, daily)")
        };
        match part.split_once('-') {
            Some((from, to)) => {
                let from = day_index(from).ok_or_else(|| unknown(from))?;
                let to = day_index(to).ok_or_else(|| unknown(to))?;
                // mon-fri, or a wrapping range such as fri-mon.
                let mut d = from;
                loop {
                    days.push(d);
                    if d == to {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days.push(day_index(part).ok_or_else(|| unknown(part))?),
        }
    }
    Ok(days)
}

fn parse_range(text: &str) -> Result<(u32, u32), String> {
    let (from, to) = text.split_once('-').ok_or_else(|| {
        format!("`{text}` is not a time range; write HH:MM-HH:MM such as 08:30-17:30")
    })?;
    let (from, to) = (parse_minute(from)?, parse_minute(to)?);
    if from >= to {
        return Err(format!(
            "`{text}` ends before it starts; a range past midnight is two ranges (e.g. `22:00-24:00` and next day `00:00-06:00`)"
        ));
    }
    Ok((from, to))
}

fn parse_minute(text: &str) -> Result<u32, String> {
    if text == "24:00" {
        return Ok(24 * 60);
    }
    NaiveTime::parse_from_str(text, "%H:%M")
        .map(|t| t.hour() * 60 + t.minute())
        .map_err(|_| format!("`{text}` is not a time; write HH:MM (00:00 to 24:00)"))
}

/// The weekday as rules write it: `mon` … `sun`.
pub fn weekday_name(day: Weekday) -> &'static str {
    DAYS[day.num_days_from_monday() as usize].0
}

/// Parses a time zone name such as `Europe/Amsterdam`.
pub fn parse_time_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("unknown time zone `{name}`; use an IANA name such as Europe/Amsterdam")
    })
}

/// When a call must be answered: `timeout − margin` after the request arrived. Every wait on
/// a call's behalf (a lookup, a place in the evaluation pool, a rule) ends by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// When the request reached the server.
    pub arrived: Instant,
    /// When the answer must be on its way.
    pub at: Instant,
}

impl Deadline {
    /// A deadline `budget` after `arrived`.
    pub fn new(arrived: Instant, budget: Duration) -> Self {
        Deadline {
            arrived,
            at: saturating_add(arrived, budget),
        }
    }

    pub fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// Time since arrival, in microseconds: how long the call has taken so far.
    pub fn elapsed_micros(&self) -> u64 {
        micros(self.arrived.elapsed())
    }
}

/// `instant + d`, or the furthest instant that fits: deadlines never overflow.
pub fn saturating_add(instant: Instant, d: Duration) -> Instant {
    instant
        .checked_add(d)
        .or_else(|| instant.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(instant)
}

/// A duration in whole microseconds, as traces and the call log keep it.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Seconds since the Unix epoch, now.
pub fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Local times are written `2026-11-23 10:00` (seconds and a `T` are accepted too).
pub fn parse_local_time(text: &str) -> Option<NaiveDateTime> {
    [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text.trim(), format).ok())
}

/// A local time in `zone` as UTC; an error names the zone when the time does not exist
/// (the clock skips it for summer time).
pub fn local_to_utc(zone: Tz, local: NaiveDateTime) -> Result<DateTime<Utc>, String> {
    zone.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| {
            format!("{local} does not exist in {zone} (the clock skips it for summer time)")
        })
}

/// Shown in traces and test failures.
pub struct LocalTime<'a>(pub &'a DateTime<Tz>);

impl fmt::Display for LocalTime<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            weekday_name(self.0.weekday()),
            self.0.format("%Y-%m-%d %H:%M:%S %Z")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Tz> {
        DEFAULT_TIME_ZONE
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .unwrap()
    }

    #[test]
    fn office_hours_table() {
        let hours = OfficeHours::parse("mon-fri 08:30-12:00 13:00-17:30; sat 10:00-14:00").unwrap();
        // 2026-11-23 is a Monday.
        let cases = [
            (at(2026, 11, 23, 8, 29), false),
            (at(2026, 11, 23, 8, 30), true),
            (at(2026, 11, 23, 12, 30), false),
            (at(2026, 11, 23, 17, 29), true),
            (at(2026, 11, 23, 17, 30), false),
            (at(2026, 11, 28, 11, 0), true),
            (at(2026, 11, 29, 11, 0), false),
        ];
        for (time, open) in cases {
            assert_eq!(hours.contains(&time), open, "{}", LocalTime(&time));
        }
    }

    #[test]
    fn dutch_days_daily_and_wrapping_ranges() {
        let nl = OfficeHours::parse("ma-vr 09:00-17:00").unwrap();
        assert!(nl.contains(&at(2026, 11, 27, 9, 0)));
        let daily = OfficeHours::parse("daily 00:00-24:00").unwrap();
        assert!(daily.contains(&at(2026, 11, 29, 23, 59)));
        let weekend = OfficeHours::parse("sat-mon 10:00-11:00").unwrap();
        assert!(weekend.contains(&at(2026, 11, 29, 10, 0)));
        assert!(weekend.contains(&at(2026, 11, 23, 10, 0)));
        assert!(!weekend.contains(&at(2026, 11, 24, 10, 0)));
    }

    #[test]
    fn office_hours_errors_say_what_to_write() {
        for (spec, needle) in [
            ("mon-fry 08:00-17:00", "unknown day `fry`"),
            ("mon-fri", "no time range"),
            ("mon-fri 8-17", "not a time"),
            ("mon-fri 17:00-08:00", "ends before it starts"),
            ("", "no opening hours"),
        ] {
            let err = OfficeHours::parse(spec).unwrap_err().to_string();
            assert!(err.contains(needle), "{spec:?} → {err}");
        }
    }

    #[test]
    fn time_zone_names() {
        assert!(parse_time_zone("Europe/Amsterdam").is_ok());
        assert!(
            parse_time_zone("Europe/Amsterdamm")
                .unwrap_err()
                .contains("unknown time zone")
        );
    }
}
