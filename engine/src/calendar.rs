//! Holiday calendars: a country's public holidays computed for any year, and company days kept
//! once in belroute.yaml and used by several rule sets. A rule set names them with `calendar:`,
//! so nobody copies next year's dates into every file (or forgets to).

use std::collections::BTreeMap;

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

/// A country whose public holidays belroute computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Country {
    /// The Netherlands: the days most collective agreements give off.
    Nl,
}

impl Country {
    pub const CODES: [&'static str; 1] = ["nl"];

    pub fn parse(code: &str) -> Option<Country> {
        match code.to_ascii_lowercase().as_str() {
            "nl" => Some(Country::Nl),
            _ => None,
        }
    }

    /// Every public holiday's name, as `except:` may name them.
    pub fn names(self) -> &'static [&'static str] {
        match self {
            Country::Nl => &NL_NAMES,
        }
    }

    /// The public holidays of `year`, in date order.
    pub fn days(self, year: i32) -> Vec<(NaiveDate, &'static str)> {
        match self {
            Country::Nl => nl(year),
        }
    }

    /// The public holiday on `date`, if it is one.
    pub fn holiday(self, date: NaiveDate) -> Option<&'static str> {
        self.days(date.year())
            .into_iter()
            .find(|(day, _)| *day == date)
            .map(|(_, name)| name)
    }
}

const NL_NAMES: [&str; 11] = [
    "Nieuwjaarsdag",
    "Goede Vrijdag",
    "Eerste Paasdag",
    "Tweede Paasdag",
    "Koningsdag",
    "Bevrijdingsdag",
    "Hemelvaartsdag",
    "Eerste Pinksterdag",
    "Tweede Pinksterdag",
    "Eerste Kerstdag",
    "Tweede Kerstdag",
];

fn nl(year: i32) -> Vec<(NaiveDate, &'static str)> {
    let Some(easter) = easter(year) else {
        return Vec::new();
    };
    let date = |month, day| NaiveDate::from_ymd_opt(year, month, day);
    let after = |days: u64| easter.checked_add_days(Days::new(days));
    // Koningsdag is 27 April, or the 26th when the 27th is a Sunday.
    let koningsdag = date(4, 27).map(|d| match d.weekday() {
        Weekday::Sun => d.pred_opt().unwrap_or(d),
        _ => d,
    });
    let mut days: Vec<(NaiveDate, &'static str)> = [
        (date(1, 1), "Nieuwjaarsdag"),
        (easter.checked_sub_days(Days::new(2)), "Goede Vrijdag"),
        (Some(easter), "Eerste Paasdag"),
        (after(1), "Tweede Paasdag"),
        (koningsdag, "Koningsdag"),
        (date(5, 5), "Bevrijdingsdag"),
        (after(39), "Hemelvaartsdag"),
        (after(49), "Eerste Pinksterdag"),
        (after(50), "Tweede Pinksterdag"),
        (date(12, 25), "Eerste Kerstdag"),
        (date(12, 26), "Tweede Kerstdag"),
    ]
    .into_iter()
    .filter_map(|(day, name)| Some((day?, name)))
    .collect();
    days.sort();
    days
}

/// Easter Sunday of `year` in the Gregorian calendar (the anonymous algorithm, Meeus/Jones/
/// Butcher).
pub fn easter(year: i32) -> Option<NaiveDate> {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

/// A company day: one date, or a day every year (`every: 12-24`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompanyDay {
    On(NaiveDate, String),
    Every { month: u32, day: u32, name: String },
}

/// Company calendars from belroute.yaml `calendars:`, by name.
pub type Calendars = BTreeMap<String, Vec<CompanyDay>>;

/// No company calendars (tools and tests).
pub static NO_CALENDARS: Calendars = BTreeMap::new();

/// Reads one company calendar of belroute.yaml `calendars:`: a list of `{date: 2026-12-24,
/// name: Kerstavond}` (that day) and `{every: 12-31, name: Oudejaarsdag}` (every year). Returns
/// the days, or every problem with its place.
pub fn read_company_days(
    node: &crate::yaml::Node,
) -> Result<Vec<CompanyDay>, Vec<(crate::diagnostic::Position, String)>> {
    let mut problems = Vec::new();
    let mut days = Vec::new();
    let Some(items) = node.as_seq() else {
        return Err(vec![(
            node.position,
            "a calendar is a list of days: {date: 2026-12-24, name: Kerstavond} or {every: 12-31, name: Oudejaarsdag}".into(),
        )]);
    };
    for item in items {
        let Some(map) = item.as_map() else {
            problems.push((
                item.position,
                "a calendar day is {date: YYYY-MM-DD, name: …} or {every: MM-DD, name: …}".into(),
            ));
            continue;
        };
        let get = |key: &str| {
            map.iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v)
        };
        for (key, _) in map.iter() {
            if !matches!(key.as_str(), Some("date" | "every" | "name")) {
                problems.push((
                    key.position,
                    format!(
                        "unknown key `{}` in a calendar day; write date, every and name",
                        key.as_str().unwrap_or_default()
                    ),
                ));
            }
        }
        let name = get("name")
            .and_then(|n| n.as_str())
            .unwrap_or("company day")
            .to_string();
        match (get("date"), get("every")) {
            (Some(date), None) => {
                match date
                    .as_str()
                    .map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d"))
                {
                    Some(Ok(on)) => days.push(CompanyDay::On(on, name)),
                    _ => problems.push((
                        date.position,
                        "`date` is written YYYY-MM-DD, e.g. 2026-12-24".into(),
                    )),
                }
            }
            (None, Some(every)) => {
                let parsed = every.as_str().and_then(|text| {
                    let (month, day) = text.split_once('-')?;
                    let (month, day) = (month.parse().ok()?, day.parse().ok()?);
                    // A leap day would be closed only every four years: refused.
                    NaiveDate::from_ymd_opt(2027, month, day).map(|_| (month, day))
                });
                match parsed {
                    Some((month, day)) => days.push(CompanyDay::Every { month, day, name }),
                    None => problems.push((
                        every.position,
                        "`every` is a day of every year written MM-DD, e.g. 12-24".into(),
                    )),
                }
            }
            _ => problems.push((
                item.position,
                "a calendar day has a `date` (that day) or `every` (every year), not both".into(),
            )),
        }
    }
    if problems.is_empty() {
        Ok(days)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    /// The Dutch public holidays 2025–2032 as the government and the calendars publish them.
    #[test]
    fn dutch_public_holidays_2025_to_2032() {
        let published: [(i32, [&str; 11]); 8] = [
            (
                2025,
                [
                    "2025-01-01",
                    "2025-04-18",
                    "2025-04-20",
                    "2025-04-21",
                    "2025-04-26",
                    "2025-05-05",
                    "2025-05-29",
                    "2025-06-08",
                    "2025-06-09",
                    "2025-12-25",
                    "2025-12-26",
                ],
            ),
            (
                2026,
                [
                    "2026-01-01",
                    "2026-04-03",
                    "2026-04-05",
                    "2026-04-06",
                    "2026-04-27",
                    "2026-05-05",
                    "2026-05-14",
                    "2026-05-24",
                    "2026-05-25",
                    "2026-12-25",
                    "2026-12-26",
                ],
            ),
            (
                2027,
                [
                    "2027-01-01",
                    "2027-03-26",
                    "2027-03-28",
                    "2027-03-29",
                    "2027-04-27",
                    "2027-05-05",
                    "2027-05-06",
                    "2027-05-16",
                    "2027-05-17",
                    "2027-12-25",
                    "2027-12-26",
                ],
            ),
            (
                2028,
                [
                    "2028-01-01",
                    "2028-04-14",
                    "2028-04-16",
                    "2028-04-17",
                    "2028-04-27",
                    "2028-05-05",
                    "2028-05-25",
                    "2028-06-04",
                    "2028-06-05",
                    "2028-12-25",
                    "2028-12-26",
                ],
            ),
            (
                2029,
                [
                    "2029-01-01",
                    "2029-03-30",
                    "2029-04-01",
                    "2029-04-02",
                    "2029-04-27",
                    "2029-05-05",
                    "2029-05-10",
                    "2029-05-20",
                    "2029-05-21",
                    "2029-12-25",
                    "2029-12-26",
                ],
            ),
            (
                2030,
                [
                    "2030-01-01",
                    "2030-04-19",
                    "2030-04-21",
                    "2030-04-22",
                    "2030-04-27",
                    "2030-05-05",
                    "2030-05-30",
                    "2030-06-09",
                    "2030-06-10",
                    "2030-12-25",
                    "2030-12-26",
                ],
            ),
            (
                2031,
                [
                    "2031-01-01",
                    "2031-04-11",
                    "2031-04-13",
                    "2031-04-14",
                    "2031-04-26",
                    "2031-05-05",
                    "2031-05-22",
                    "2031-06-01",
                    "2031-06-02",
                    "2031-12-25",
                    "2031-12-26",
                ],
            ),
            (
                2032,
                [
                    "2032-01-01",
                    "2032-03-26",
                    "2032-03-28",
                    "2032-03-29",
                    "2032-04-27",
                    "2032-05-05",
                    "2032-05-06",
                    "2032-05-16",
                    "2032-05-17",
                    "2032-12-25",
                    "2032-12-26",
                ],
            ),
        ];
        for (year, dates) in published {
            let computed: Vec<(NaiveDate, &str)> = Country::Nl.days(year);
            let expected: Vec<(NaiveDate, &str)> = dates
                .iter()
                .zip([
                    "Nieuwjaarsdag",
                    "Goede Vrijdag",
                    "Eerste Paasdag",
                    "Tweede Paasdag",
                    "Koningsdag",
                    "Bevrijdingsdag",
                    "Hemelvaartsdag",
                    "Eerste Pinksterdag",
                    "Tweede Pinksterdag",
                    "Eerste Kerstdag",
                    "Tweede Kerstdag",
                ])
                .map(|(date, name)| (d(date), name))
                .collect();
            assert_eq!(computed, expected, "{year}");
        }
        assert_eq!(Country::Nl.holiday(d("2031-04-26")), Some("Koningsdag"));
        assert_eq!(
            Country::Nl.holiday(d("2031-04-27")),
            None,
            "a Sunday: the 26th"
        );
        assert_eq!(Country::Nl.holiday(d("2026-12-24")), None);
    }
}
