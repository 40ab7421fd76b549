//! Log lines that cannot lie: in the text format every field value and the message are escaped,
//! so text from a request or a rule (a rule-set name in the URL, a `print` in a rule, call data
//! in an error) can neither forge a line (`%0A`) nor send terminal escapes (`%1B`). The JSON
//! format escapes by construction.

use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{self, FormatFields};

/// The text format's field formatter: `message key=value …`, each escaped.
pub fn escaped_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    format::debug_fn(|writer, field, value| {
        let text = format!("{value:?}");
        let text = belroute_engine::text::escape(&text);
        if field.name() == "message" {
            write!(writer, "{text}")
        } else {
            write!(writer, "{}={text}", field.name())
        }
    })
    .delimited(" ")
}

/// Lets a warning through once per key per period: a misconfiguration that every call shows
/// is said, not repeated for each call. Keys are bounded: at the bound, keys quiet for a whole
/// period are forgotten; if none are, the warning is not let through (the caller still counts).
#[derive(Debug)]
pub struct Throttle {
    every: std::time::Duration,
    bound: usize,
    last: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

impl Throttle {
    pub fn new(every: std::time::Duration, bound: usize) -> Self {
        Throttle {
            every,
            bound,
            last: std::sync::Mutex::default(),
        }
    }

    /// Whether to say it for `key` at `now`.
    pub fn allow(&self, key: &str, now: std::time::Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = last.get_mut(key) {
            if now.saturating_duration_since(*at) < self.every {
                return false;
            }
            *at = now;
            return true;
        }
        if last.len() >= self.bound {
            let every = self.every;
            last.retain(|_, at| now.saturating_duration_since(*at) < every);
            if last.len() >= self.bound {
                return false;
            }
        }
        last.insert(key.to_string(), now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_lets_one_through_per_key_per_period_within_its_bound() {
        use std::time::{Duration, Instant};
        let throttle = Throttle::new(Duration::from_secs(60), 2);
        let t0 = Instant::now();
        assert!(throttle.allow("main", t0));
        assert!(!throttle.allow("main", t0 + Duration::from_secs(59)));
        assert!(throttle.allow("support", t0 + Duration::from_secs(1)));
        // Full, and every key said within the minute: a third key waits.
        assert!(!throttle.allow("other", t0 + Duration::from_secs(30)));
        assert!(throttle.allow("main", t0 + Duration::from_secs(60)));
        // A minute after `support` was said it is forgotten, and `other` gets its turn.
        assert!(throttle.allow("other", t0 + Duration::from_secs(61)));
    }
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn request_text_cannot_forge_lines_or_escape_the_terminal() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .fmt_fields(escaped_fields())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let name = "main\nINFO belroute: forged\u{1b}[2J";
            tracing::warn!(ruleset = %name, "refused: {}", name);
        });
        let out = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.contains('\u{1b}'), "{out}");
        assert!(
            out.contains("ruleset=main\\nINFO belroute: forged\\u{1b}[2J"),
            "{out}"
        );
        assert!(out.contains("refused: main\\nINFO"), "{out}");
    }
}
