//! Who is calling: the caller's number, normalised so rules and CRM lookups can match it.
//!
//! Callvoip sends numbers without `+` or `00` (`31152026057`); people type them every which way
//! (`015-2026057`, `+31 (0)15 202 6057`, `0031152026057`). Every form becomes one E.164 number.

use std::sync::{Arc, OnceLock};

use phonenumber::country::Id;
use phonenumber::{Mode, PhoneNumber, Type};
use serde::{Deserialize, Serialize};

/// The normalised caller, as rules see it in `caller` and plugins receive it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Caller {
    /// The number as received, untouched.
    pub raw: String,
    /// `+31152026057`; empty unless the number is valid.
    pub e164: String,
    /// `0152026057`: the national form without spaces; empty unless valid.
    pub national: String,
    /// `+31 15 202 6057`; empty unless valid.
    pub international: String,
    /// `31152026057`: E.164 without the `+`, the form Callvoip sends; empty unless valid.
    pub digits: String,
    /// ISO 3166 code of the number's country (`NL`); empty when unknown.
    pub country: String,
    /// Country calling code (31); 0 when unknown.
    pub country_code: u16,
    /// `mobile`, `fixed`, `fixed_or_mobile`, `toll_free`, `premium_rate`, `shared_cost`,
    /// `personal`, `voip`, `pager`, `uan`, `voicemail`, `short_code`, `emergency`, `sip` or `unknown`.
    pub kind: &'static str,
    /// A real, dialable number by the numbering plan.
    pub valid: bool,
    /// Number withheld: empty, `anonymous`, `unknown`, `restricted`, `private`, …
    pub anonymous: bool,
    /// A SIP account or internal extension rather than a phone number.
    pub is_sip_account: bool,
    /// `caller` as rules see it, built on first use: the normalisation cache shares one
    /// `Caller` between a number's calls, so a frequent caller's map is built once.
    #[serde(skip)]
    pub(crate) script_view: ScriptView,
    /// The default region it was normalised for: with the number as received, all the call
    /// log keeps of a caller; the rest is normalised again when the record is read.
    #[serde(skip)]
    pub(crate) region: NormalisedIn,
}

/// A caller's default region, when it came from a [`Normaliser`]. Implied by the other fields,
/// so it takes no part in comparisons.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NormalisedIn(pub(crate) Option<Id>);

impl PartialEq for NormalisedIn {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for NormalisedIn {}

/// A lazily built Rhai value; a cache, so it takes no part in comparisons.
#[derive(Clone, Default)]
pub(crate) struct ScriptView(pub(crate) OnceLock<rhai::Dynamic>);

impl PartialEq for ScriptView {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ScriptView {}

impl std::fmt::Debug for ScriptView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScriptView")
    }
}

impl Caller {
    /// The caller as the call log stores it: `{"raw": …, "region": "NL"}`, everything else
    /// being what normalising `raw` for that region gives (read back by [`Caller`]'s
    /// `Deserialize`); in full when its region is not known.
    pub(crate) fn serialize_stored<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self.region.0 {
            Some(region) => {
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry("raw", &self.raw)?;
                map.serialize_entry("region", &region)?;
                map.end()
            }
            None => self.serialize(s),
        }
    }

    /// Does the caller have a number a CRM can be asked about? Not when it is withheld, not a
    /// valid number by the numbering plan, or a SIP account or internal extension.
    pub fn has_number(&self) -> bool {
        self.valid && !self.e164.is_empty()
    }

    /// The one text that names this caller in caches, the call log and the admin API: the
    /// E.164 number, or the number as received when it is not a valid phone number.
    pub fn key(&self) -> &str {
        if self.e164.is_empty() {
            &self.raw
        } else {
            &self.e164
        }
    }
}

/// Words that PBXs and carriers put where a withheld number would be.
const ANONYMOUS: [&str; 12] = [
    "anonymous",
    "anoniem",
    "unknown",
    "onbekend",
    "restricted",
    "private",
    "privé",
    "withheld",
    "unavailable",
    "blocked",
    "no caller id",
    "nocallerid",
];

/// Callers remembered by the number as received: the same numbers call again and again, and
/// parsing one against the numbering plan costs far more than looking it up.
pub const REMEMBERED_CALLERS: u64 = 10_000;

/// Raw numbers longer than this are not looked up in, or added to, the cache.
const LONGEST_REMEMBERED: usize = 64;

/// Normalises caller numbers for one default region (national numbers like `0152026057`).
#[derive(Clone)]
pub struct Normaliser {
    plan: Plan,
    remembered: moka::sync::Cache<Box<str>, Arc<Caller>>,
}

impl std::fmt::Debug for Normaliser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Normaliser")
            .field("region", &self.plan.0)
            .finish_non_exhaustive()
    }
}

impl Default for Normaliser {
    fn default() -> Self {
        Normaliser::for_region(Id::NL)
    }
}

/// An unknown ISO country code was given as the default region.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown country code `{0}` for the caller's default region; use an ISO 3166 code such as NL or BE"
)]
pub struct UnknownRegion(pub String);

impl Normaliser {
    pub fn new(region: &str) -> Result<Self, UnknownRegion> {
        let region = region
            .to_ascii_uppercase()
            .parse()
            .map_err(|_| UnknownRegion(region.to_string()))?;
        Ok(Normaliser::for_region(region))
    }

    fn for_region(region: Id) -> Self {
        Normaliser {
            plan: Plan(region),
            remembered: moka::sync::Cache::new(REMEMBERED_CALLERS),
        }
    }

    /// The caller behind `raw`, normalised (from the cache when this number called before).
    pub fn normalise(&self, raw: &str) -> Arc<Caller> {
        if raw.len() > LONGEST_REMEMBERED {
            return Arc::new(self.parse(raw));
        }
        if let Some(caller) = self.remembered.get(raw) {
            return caller;
        }
        let caller = Arc::new(self.parse(raw));
        self.remembered.insert(raw.into(), caller.clone());
        caller
    }

    /// Normalises without the cache.
    pub fn parse(&self, raw: &str) -> Caller {
        self.plan.parse(raw, true)
    }

    /// Normalises by phonenumber alone, without the fast path for the Dutch forms Callvoip
    /// sends: what the fast path must agree with (the tests and the `normalise` fuzzer compare
    /// the two on every input).
    #[doc(hidden)]
    pub fn parse_by_numbering_plan(&self, raw: &str) -> Caller {
        self.plan.parse(raw, false)
    }
}

/// Normalising for one default region, without a cache: what a [`Normaliser`] does on a miss,
/// and what reading a stored caller back does.
#[derive(Debug, Clone, Copy)]
struct Plan(Id);

impl Plan {
    fn parse(self, raw: &str, fast: bool) -> Caller {
        let mut caller = Caller {
            raw: raw.to_string(),
            kind: "unknown",
            region: NormalisedIn(Some(self.0)),
            ..Caller::default()
        };
        let user = user_part(raw.trim());
        if is_anonymous(user) {
            caller.anonymous = true;
            return caller;
        }
        let cleaned = strip_separators(user);
        if cleaned.is_empty() {
            return caller;
        }
        let (plus, digits) = match cleaned.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, cleaned.as_str()),
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) || digits.is_empty() {
            caller.is_sip_account = true;
            caller.kind = "sip";
            return caller;
        }
        if fast
            && self.0 == Id::NL
            && let Some(dutch) = dutch_national(plus, digits)
        {
            fill_dutch(&mut caller, dutch);
            return caller;
        }
        let parsed = if plus {
            self.parse_international(&format!("+{digits}"))
        } else if let Some(international) = digits.strip_prefix("00") {
            self.parse_international(&format!("+{international}"))
        } else if digits.starts_with('0') {
            self.parse_valid(digits)
        } else if digits.len() <= 6 {
            // Internal extensions (`1003`) reach the webhook as the caller of internal calls.
            caller.is_sip_account = true;
            caller.kind = "sip";
            return caller;
        } else {
            // Callvoip's own form: country code without `+`; a national number without its
            // trunk `0` is the fallback.
            self.parse_international(&format!("+{digits}"))
                .or_else(|| self.parse_valid(digits))
        };
        if let Some(number) = parsed {
            self.fill(&mut caller, &number);
        }
        caller
    }

    /// A number written with its country code, `+` and digits only. Its E.164 form must be
    /// what was written, less at most a trunk `0` after the country code (`+31 0 15…`,
    /// `+44 020…`). phonenumber 0.3 strips national prefixes more eagerly than libphonenumber:
    /// read with the default region it strips that region's prefix from any country's number
    /// (with NL, Rome's `+39 06…` lost its `0` and was refused; with US, `+31 11 100113357`
    /// became another caller, `+31 10 011 3357`), read without one it strips Russia's `8`
    /// (`+7 812…`). So both readings are tried and one that changed the number is not used.
    fn parse_international(self, text: &str) -> Option<PhoneNumber> {
        [None, Some(self.0)].into_iter().find_map(|region| {
            let number = phonenumber::parse(region, text)
                .ok()
                .filter(phonenumber::is_valid)?;
            let e164 = number.format().mode(Mode::E164).to_string();
            let code = number.code().value().to_string();
            let as_written = e164 == text
                || text
                    .strip_prefix('+')
                    .and_then(|t| t.strip_prefix(code.as_str()))
                    .and_then(|t| t.strip_prefix('0'))
                    .zip(e164.get(1 + code.len()..))
                    .is_some_and(|(written, national)| written == national);
            as_written.then_some(number)
        })
    }

    /// A national number, read by the default region's numbering plan.
    fn parse_valid(self, text: &str) -> Option<PhoneNumber> {
        phonenumber::parse(Some(self.0), text)
            .ok()
            .filter(phonenumber::is_valid)
    }

    fn fill(self, caller: &mut Caller, number: &PhoneNumber) {
        caller.valid = true;
        caller.e164 = number.format().mode(Mode::E164).to_string();
        caller.digits = caller.e164.trim_start_matches('+').to_string();
        caller.international = number.format().mode(Mode::International).to_string();
        caller.national = number
            .format()
            .mode(Mode::National)
            .to_string()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        caller.country_code = number.code().value();
        caller.country = number
            .country()
            .id()
            .map(|id| id.as_ref().to_string())
            .unwrap_or_default();
        caller.kind = kind_name(number.number_type(&phonenumber::metadata::DATABASE));
    }
}

/// The national significant number (nine digits, no trunk `0`) of a Dutch mobile or
/// geographic number written as Callvoip sends it (`31…`) or as people do (`+31…`, `0031…`,
/// `0…`), when its kind and formats are certain without phonenumber's parse: those two kinds
/// are most callers, and phonenumber takes ~10 µs per new number. Anything else (`None`) is left
/// to phonenumber. The ranges are those of phonenumber's metadata for NL (libphonenumber
/// 9.0.33); `fast_path_agrees_with_phonenumber` checks every three-digit prefix in every form.
fn dutch_national(plus: bool, digits: &str) -> Option<&str> {
    let national = if plus {
        digits.strip_prefix("31")?
    } else if let Some(rest) = digits.strip_prefix("0031") {
        rest
    } else if let Some(rest) = digits.strip_prefix('0') {
        // `00` followed by another country code is for phonenumber.
        if rest.starts_with('0') {
            return None;
        }
        rest
    } else {
        digits.strip_prefix("31")?
    };
    let b = national.as_bytes();
    if b.len() != 9 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    (dutch_kind(b).is_some()).then_some(national)
}

/// `mobile` or `fixed` for a nine-digit Dutch national number in those ranges.
fn dutch_kind(n: &[u8]) -> Option<&'static str> {
    let (a, b, c) = (n[0], n[1], n[2]);
    let fixed = match (a, b) {
        // 6[1-58]\d{7}
        (b'6', b'1'..=b'5' | b'8') => return Some("mobile"),
        (b'1', b'0' | b'3' | b'5') => true,
        (b'1', b'1') => matches!(c, b'1' | b'3'..=b'5' | b'7' | b'8'),
        (b'1', b'6') => matches!(c, b'1' | b'2' | b'4'..=b'8'),
        (b'1', b'7') => matches!(c, b'2' | b'4'),
        (b'1', b'8') => matches!(c, b'0'..=b'4' | b'6' | b'7'),
        (b'2', b'0' | b'3' | b'4' | b'6') => true,
        (b'2', b'2') => matches!(c, b'2'..=b'4' | b'6'..=b'9'),
        (b'2', b'5') => matches!(c, b'1' | b'2' | b'5'),
        (b'2', b'9') => matches!(c, b'4' | b'7' | b'9'),
        (b'3', b'0' | b'3' | b'5' | b'6' | b'8') => true,
        (b'3', b'1') => matches!(c, b'3'..=b'8'),
        (b'3', b'2') => matches!(c, b'0' | b'1'),
        (b'3', b'4') => matches!(c, b'1'..=b'8'),
        (b'4', b'0' | b'3' | b'5' | b'6') => true,
        (b'4', b'1') => matches!(c, b'1'..=b'3' | b'6' | b'8'),
        (b'4', b'7') => matches!(c, b'5' | b'8'),
        (b'4', b'8') => matches!(c, b'1' | b'5'..=b'8'),
        (b'4', b'9') => matches!(c, b'2' | b'3' | b'5' | b'7' | b'9'),
        (b'5', b'0' | b'3' | b'5' | b'8') => true,
        (b'5', b'1' | b'9') => matches!(c, b'1'..=b'9'),
        (b'5', b'2') => matches!(c, b'1'..=b'5' | b'7'..=b'9'),
        (b'5', b'4') => matches!(c, b'1' | b'3'..=b'8'),
        (b'5', b'6') => matches!(c, b'1' | b'2' | b'6'),
        (b'5', b'7') => matches!(c, b'0'..=b'3' | b'5' | b'7' | b'8'),
        (b'7', _) => true,
        _ => false,
    };
    fixed.then_some("fixed")
}

/// Fills a caller from a nine-digit Dutch national number `dutch_national` accepted, as
/// `Normaliser::fill` would from phonenumber's parse.
fn fill_dutch(caller: &mut Caller, national: &str) {
    let n = national.as_bytes();
    caller.valid = true;
    caller.kind = dutch_kind(n).unwrap_or("unknown");
    caller.country = "NL".into();
    caller.country_code = 31;
    caller.digits = format!("31{national}");
    caller.e164 = format!("+31{national}");
    caller.national = format!("0{national}");
    // The metadata's formats: `6 12345678`; `111 234 567` for the three-digit area codes;
    // `15 202 6057` for the others.
    let (a, b) = (n[0], n[1]);
    let three = matches!(
        (a, b),
        (b'1', b'1' | b'6'..=b'8')
            | (b'2', b'2' | b'5' | b'9')
            | (b'3', b'1' | b'2' | b'4')
            | (b'4', b'1' | b'7'..=b'9')
            | (b'5', b'1' | b'2' | b'4' | b'6' | b'7' | b'9')
    );
    caller.international = if a == b'6' {
        format!("+31 6 {}", &national[1..])
    } else if three {
        format!(
            "+31 {} {} {}",
            &national[..3],
            &national[3..6],
            &national[6..]
        )
    } else {
        format!(
            "+31 {} {} {}",
            &national[..2],
            &national[2..5],
            &national[5..]
        )
    };
}

/// Every `kind` a caller can have.
pub const KINDS: [&str; 15] = [
    "fixed",
    "mobile",
    "fixed_or_mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "personal",
    "voip",
    "pager",
    "uan",
    "emergency",
    "voicemail",
    "short_code",
    "sip",
    "unknown",
];

/// A caller read back (a worker receives the caller the server normalised, the call log's
/// trace holds one): `kind` as text; a field missing (an older record) is empty.
#[derive(Deserialize, Default)]
#[serde(default)]
struct CallerRead {
    raw: String,
    e164: String,
    national: String,
    international: String,
    digits: String,
    country: String,
    country_code: u16,
    kind: String,
    valid: bool,
    anonymous: bool,
    is_sip_account: bool,
    /// Set in the call log's short form (`raw` and `region` only).
    region: Option<Id>,
}

impl<'de> Deserialize<'de> for Caller {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        CallerRead::deserialize(d).map(Caller::from)
    }
}

impl From<CallerRead> for Caller {
    fn from(read: CallerRead) -> Self {
        if let (Some(region), "") = (read.region, read.kind.as_str()) {
            // The call log's short form: normalised again, by the same code.
            return Plan(region).parse(&read.raw, true);
        }
        Caller {
            raw: read.raw,
            e164: read.e164,
            national: read.national,
            international: read.international,
            digits: read.digits,
            country: read.country,
            country_code: read.country_code,
            kind: KINDS
                .iter()
                .find(|k| **k == read.kind)
                .copied()
                .unwrap_or("unknown"),
            valid: read.valid,
            anonymous: read.anonymous,
            is_sip_account: read.is_sip_account,
            script_view: ScriptView::default(),
            region: NormalisedIn(read.region),
        }
    }
}

fn kind_name(kind: Type) -> &'static str {
    match kind {
        Type::FixedLine => "fixed",
        Type::Mobile => "mobile",
        Type::FixedLineOrMobile => "fixed_or_mobile",
        Type::TollFree => "toll_free",
        Type::PremiumRate => "premium_rate",
        Type::SharedCost => "shared_cost",
        Type::PersonalNumber => "personal",
        Type::Voip => "voip",
        Type::Pager => "pager",
        Type::Uan => "uan",
        Type::Emergency => "emergency",
        Type::Voicemail => "voicemail",
        Type::ShortCode => "short_code",
        _ => "unknown",
    }
}

/// `sip:+31152026057@pbx.example` and `tel:+31…` carry the number in their user part.
fn user_part(raw: &str) -> &str {
    let without_scheme = ["sip:", "sips:", "tel:"]
        .iter()
        .find_map(|scheme| {
            raw.get(..scheme.len())
                .filter(|p| p.eq_ignore_ascii_case(scheme))
                .map(|_| &raw[scheme.len()..])
        })
        .unwrap_or(raw);
    let user = without_scheme
        .split(['@', ';'])
        .next()
        .unwrap_or(without_scheme);
    let phone_like = user
        .bytes()
        .all(|b| b.is_ascii_digit() || b" +-().".contains(&b));
    if phone_like || is_anonymous(user) {
        user
    } else {
        raw
    }
}

fn is_anonymous(text: &str) -> bool {
    let lower = text.trim().to_lowercase();
    lower.is_empty() || ANONYMOUS.contains(&lower.as_str())
}

/// Drops spaces, dashes, dots, slashes, brackets and the Dutch-style `(0)` trunk hint.
fn strip_separators(text: &str) -> String {
    text.replace("(0)", "")
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '/' | '(' | ')' | '\u{a0}'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(raw: &str) -> Caller {
        Normaliser::default().parse(raw)
    }

    /// input, e164, national, country, kind, valid, anonymous, sip account.
    type Row = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        bool,
        bool,
        bool,
    );

    #[test]
    fn normalises_the_numbers_callers_really_have() {
        let table: &[Row] = &[
            (
                "31152026057",
                "+31152026057",
                "0152026057",
                "NL",
                "fixed",
                true,
                false,
                false,
            ),
            (
                "0031152026057",
                "+31152026057",
                "0152026057",
                "NL",
                "fixed",
                true,
                false,
                false,
            ),
            (
                "+31 (0)15-2026057",
                "+31152026057",
                "0152026057",
                "NL",
                "fixed",
                true,
                false,
                false,
            ),
            (
                "015-2026057",
                "+31152026057",
                "0152026057",
                "NL",
                "fixed",
                true,
                false,
                false,
            ),
            (
                "0612345678",
                "+31612345678",
                "0612345678",
                "NL",
                "mobile",
                true,
                false,
                false,
            ),
            (
                "31612345678",
                "+31612345678",
                "0612345678",
                "NL",
                "mobile",
                true,
                false,
                false,
            ),
            (
                "442079460958",
                "+442079460958",
                "02079460958",
                "GB",
                "fixed",
                true,
                false,
                false,
            ),
            (
                "32470123456",
                "+32470123456",
                "0470123456",
                "BE",
                "mobile",
                true,
                false,
                false,
            ),
            (
                "0800-0123",
                "+318000123",
                "08000123",
                "NL",
                "toll_free",
                true,
                false,
                false,
            ),
            (
                "sip:+31152026057@pbx.example",
                "+31152026057",
                "0152026057",
                "NL",
                "fixed",
                true,
                false,
                false,
            ),
            (
                "3115202605712345678",
                "",
                "",
                "",
                "unknown",
                false,
                false,
                false,
            ),
            ("anonymous", "", "", "", "unknown", false, true, false),
            ("Anonymous", "", "", "", "unknown", false, true, false),
            ("restricted", "", "", "", "unknown", false, true, false),
            ("", "", "", "", "unknown", false, true, false),
            ("   ", "", "", "", "unknown", false, true, false),
            (
                "anonymous@anonymous.invalid",
                "",
                "",
                "",
                "unknown",
                false,
                true,
                false,
            ),
            ("receptie.amsterdam", "", "", "", "sip", false, false, true),
            ("1003", "", "", "", "sip", false, false, true),
        ];
        for &(raw, e164, national, country, kind, valid, anonymous, sip) in table {
            let c = n(raw);
            assert_eq!(
                (
                    c.e164.as_str(),
                    c.national.as_str(),
                    c.country.as_str(),
                    c.kind,
                    c.valid,
                    c.anonymous,
                    c.is_sip_account
                ),
                (e164, national, country, kind, valid, anonymous, sip),
                "normalising {raw:?}"
            );
            assert_eq!(c.raw, raw);
        }
    }

    #[test]
    fn digits_and_international_forms() {
        let c = n("0152026057");
        assert_eq!(c.digits, "31152026057");
        assert_eq!(c.international, "+31 15 202 6057");
        assert_eq!(c.country_code, 31);
    }

    #[test]
    fn the_cache_gives_the_same_answer() {
        let normaliser = Normaliser::default();
        let first = normaliser.normalise("015-2026057");
        let second = normaliser.normalise("015-2026057");
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(*first, normaliser.parse("015-2026057"));
        let long = "1".repeat(100);
        assert_eq!(*normaliser.normalise(&long), normaliser.parse(&long));
    }

    #[test]
    fn keys_and_usable_numbers() {
        assert_eq!(n("0152026057").key(), "+31152026057");
        assert!(n("0152026057").has_number());
        for raw in ["anonymous", "0699999999", "1003", "receptie.amsterdam", ""] {
            assert!(!n(raw).has_number(), "{raw}");
            assert_eq!(n(raw).key(), raw);
        }
    }

    #[test]
    fn other_default_region() {
        let be = Normaliser::new("be").unwrap();
        assert_eq!(be.normalise("0470123456").e164, "+32470123456");
        assert!(Normaliser::new("XX").is_err());
    }

    /// The fast path for Dutch numbers answers exactly what phonenumber does: every
    /// three-digit prefix of a national number, at the length of a Dutch number and one digit
    /// either side, in each form Callvoip and people write it, with varied digits after it.
    #[test]
    fn fast_path_agrees_with_phonenumber() {
        let nl = Normaliser::default();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut compared, mut fast) = (0, 0);
        for prefix in 100..1000 {
            for len in [8, 9, 10] {
                for _ in 0..2 {
                    let mut national = prefix.to_string();
                    while national.len() < len {
                        national.push(char::from(b'0' + (next() % 10) as u8));
                    }
                    for raw in [
                        format!("31{national}"),
                        format!("+31{national}"),
                        format!("0031{national}"),
                        format!("0{national}"),
                        format!("+31 (0){national}"),
                    ] {
                        let by_plan = nl.parse_by_numbering_plan(&raw);
                        assert_eq!(nl.parse(&raw), by_plan, "normalising {raw:?}");
                        compared += 1;
                        let cleaned = strip_separators(&raw);
                        let (plus, digits) = match cleaned.strip_prefix('+') {
                            Some(rest) => (true, rest),
                            None => (false, cleaned.as_str()),
                        };
                        fast += usize::from(dutch_national(plus, digits).is_some());
                    }
                }
            }
        }
        assert_eq!(compared, 900 * 3 * 2 * 5);
        assert!(fast > 2_000, "the fast path took only {fast} numbers");
        // The ones people see most, and the forms around them.
        for raw in [
            "31612345678",
            "0612345678",
            "+31 6 1234 5678",
            "0031 20 123 4567",
            "0111-234567",
            "31662345678",
            "31852345678",
            "31970123456789",
            "+310612345678",
            "003231612345678",
        ] {
            assert_eq!(nl.parse(raw), nl.parse_by_numbering_plan(raw), "{raw:?}");
        }
    }

    /// Found by the `normalise` fuzzer: a number with its country code must not be read by
    /// the default region's trunk prefix.
    #[test]
    fn numbers_with_a_country_code_keep_their_digits() {
        let nl = Normaliser::default();
        // Rome, as Callvoip sends it and as people write it: the Italian 0 is part of the number.
        for raw in ["390669880000", "+39 06 6988 0000", "0039 06 6988 0000"] {
            let caller = nl.parse(raw);
            assert!(caller.valid, "{raw}: {caller:?}");
            assert_eq!(caller.e164, "+390669880000", "{raw}");
            assert_eq!(caller.country_code, 39);
            assert_eq!(
                (caller.national.as_str(), caller.kind),
                ("0669880000", "unknown")
            );
            // +39 is shared with Vatican City: phonenumber names no country or kind for it.
            assert_eq!(caller.country, "");
        }
        // St Petersburg: Russia's trunk prefix is 8, which the number also starts with.
        assert_eq!(nl.parse("+7 812 345 6789").e164, "+78123456789");
        // A trunk 0 written after the country code is still forgiven.
        assert_eq!(nl.parse("+31 015 2026057").e164, "+31152026057");
        assert_eq!(nl.parse("+44 020 7946 0018").e164, "+442079460018");

        let us = Normaliser::new("US").unwrap();
        // US's trunk prefix 1 was stripped from a Dutch number, making it another caller's.
        let wrong = us.parse("+31 (1)11001)13357");
        assert!(!wrong.valid, "{wrong:?}");
        let right = us.parse("+31100113357");
        assert_eq!(right.e164, "+31100113357");
        assert_eq!(us.parse(&right.e164).e164, right.e164);
        assert_eq!(us.parse("(650) 253-0000").e164, "+16502530000");
    }
}
