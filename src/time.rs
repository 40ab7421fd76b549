//! Times as belroute stores, reads and shows them, in one place: milliseconds since the Unix
//! epoch in the database, RFC 3339 (UTC) in JSON, local time in the configured zone for people,
//! and the ways a person may write a time (`since=24h`, `--from "2026-11-23 09:00"`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use chrono_tz::Tz;

/// Milliseconds since the Unix epoch: how times are stored.
pub fn epoch_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map(millis).unwrap_or(0)
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    epoch_ms(SystemTime::now())
}

/// A duration in whole milliseconds, saturating.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `ms` in RFC 3339, UTC, with milliseconds (`2026-11-23T09:00:00.000Z`); empty when out of range.
pub fn rfc3339(ms: i64) -> String {
    rfc3339_as(ms, SecondsFormat::Millis)
}

/// `ms` in RFC 3339, UTC, to the second (`2026-11-23T09:00:00Z`).
pub fn rfc3339_secs(ms: i64) -> String {
    rfc3339_as(ms, SecondsFormat::Secs)
}

fn rfc3339_as(ms: i64, format: SecondsFormat) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(format, true))
        .unwrap_or_default()
}

/// `ms` as a person reads it in `zone`: `2026-11-23 10:00:00`.
pub fn local(zone: Tz, ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&zone)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

/// `since` as the admin API takes it: an RFC 3339 time, or a duration back from `now_ms`
/// (`24h`, `7d`).
pub fn since(text: &str, now_ms: i64) -> Result<i64, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp_millis());
    }
    back(text, now_ms).map_err(|_| {
        format!(
            "`since` is an RFC 3339 time (2026-11-22T09:00:00Z) or a duration back from now (24h), not `{text}`"
        )
    })
}

/// `now_ms` less a duration written as `30m`, `24h`, `7d`.
pub fn back(text: &str, now_ms: i64) -> Result<i64, String> {
    let back = belroute_engine::settings::parse_duration(text)?;
    Ok(now_ms.saturating_sub(millis(back)))
}

/// A time a person wrote: RFC 3339, or a local time in `zone` (`2026-11-23 09:00`, with
/// seconds, with a `T`, or a date alone for its midnight). `None` when it reads as neither;
/// `Some(Err)` names the zone when the local time does not exist there (summer time).
pub fn written(text: &str, zone: Tz) -> Option<Result<i64, String>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(Ok(t.timestamp_millis()));
    }
    let local = belroute_engine::parse_local_time(text).or_else(|| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })?;
    Some(in_zone(zone, local).map(|t| t.timestamp_millis()))
}

/// A local time in `zone` as UTC (see [`belroute_engine::local_to_utc`]).
pub fn in_zone(zone: Tz, local: NaiveDateTime) -> Result<DateTime<Utc>, String> {
    belroute_engine::local_to_utc(zone, local)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn times_read_and_written() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_secs(1_500), "1970-01-01T00:00:01Z");
        assert_eq!(rfc3339(i64::MAX), "");
        assert_eq!(since("1970-01-01T00:00:01Z", 0), Ok(1000));
        assert_eq!(since("1h", 7_200_000), Ok(3_600_000));
        assert!(since("yesterday", 0).unwrap_err().contains("RFC 3339"));
        let zone: Tz = "Europe/Amsterdam".parse().unwrap();
        assert_eq!(local(zone, 0), "1970-01-01 01:00:00");
        let midnight = written("2026-11-23", zone).unwrap().unwrap();
        assert_eq!(
            written("2026-11-23 00:00", zone).unwrap().unwrap(),
            midnight
        );
        assert_eq!(
            written("2026-11-23T00:00:00", zone).unwrap().unwrap(),
            midnight
        );
        assert!(written("soon", zone).is_none());
        let skipped = written("2026-03-29 02:30", zone).unwrap().unwrap_err();
        assert!(skipped.contains("Europe/Amsterdam"), "{skipped}");
    }
}
