//! What the console and a viewer's API answers mask: phone numbers, in every text a caller can put them in (their
//! fields, a plugin's facts, an error message), all but the last 3 digits — unless the
//! operator chose to see them (logged). Dates, times and the call's uuid (Callvoip's id of
//! the call, not the caller's) are never masked, anywhere.

use belroute_engine::text::mask_numbers;
use serde_json::Value;

/// Keys whose text is never a caller's data: left as they are when numbers are masked.
const NOT_PERSONAL: [&str; 14] = [
    "uuid",
    "name",
    "version",
    "ruleset",
    "route",
    "rule",
    "outcome",
    "result",
    "reason",
    "kind",
    "country",
    "received_at",
    "reported_at",
    "micros",
];

/// Whether numbers are shown or masked on this page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown {
    pub revealed: bool,
}

impl Shown {
    pub const MASKED: Shown = Shown { revealed: false };

    /// Free text a caller's number may be in.
    pub fn text(self, text: &str) -> String {
        if self.revealed {
            text.to_string()
        } else {
            mask_numbers(text)
        }
    }

    /// The value of field `key`: as it is when the key is never personal.
    pub fn field(self, key: &str, text: &str) -> String {
        if NOT_PERSONAL.contains(&key) {
            text.to_string()
        } else {
            self.text(text)
        }
    }

    /// Every string in `value`, masked but under [`NOT_PERSONAL`] keys.
    pub fn json(self, value: &mut Value) {
        if self.revealed {
            return;
        }
        match value {
            Value::String(text) => *text = mask_numbers(text),
            Value::Array(items) => items.iter_mut().for_each(|item| self.json(item)),
            Value::Object(map) => {
                for (key, item) in map.iter_mut() {
                    if !NOT_PERSONAL.contains(&key.as_str()) {
                        self.json(item);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_masked_dates_and_uuids_are_not() {
        let shown = Shown::MASKED;
        assert_eq!(shown.field("caller_number", "31152026057"), "••••••••057");
        assert_eq!(shown.field("uuid", "1234567-89"), "1234567-89");
        let mut facts = serde_json::json!({
            "last_agent_at": "2026-12-07T07:35:00Z",
            "phone": "+31 15 202 6057",
            "uuid": "1234567",
        });
        shown.json(&mut facts);
        assert_eq!(facts["last_agent_at"], "2026-12-07T07:35:00Z");
        assert_eq!(facts["phone"], "+•• •• ••• •057");
        assert_eq!(facts["uuid"], "1234567");
        let mut same = facts.clone();
        Shown { revealed: true }.json(&mut same);
        assert_eq!(same, facts);
    }
}
