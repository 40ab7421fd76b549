//! Guessing a secret costs time. Wrong credentials are counted per client address (the real
//! one, after `trusted_proxies`; IPv6 by its /64) and per kind of credential. The first
//! [`FREE`] wrong tries of an address cost nothing (an operator's typos, a test suite); after
//! that the address may try once a second, then once every 2, 4, 8… up to [`MAX_WAIT`]
//! seconds, and a try before its time is answered `429` with `Retry-After`, the secret
//! unchecked. A right credential resets its address. Another address is never slowed by these
//! failures: an attacker cannot lock the operator out by failing on purpose.
//!
//! The counts live in memory, at most [`MAX_ADDRESSES`]: an attacker rotating addresses
//! pushes out the oldest entries (and gets [`FREE`] tries per address it really has), but
//! cannot grow the table.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::HttpRequest;
use ipnet::IpNet;
use tokio::time::Instant;

use crate::metrics::Metrics;

/// Wrong tries an address has before its tries wait.
pub const FREE: u32 = 20;
/// The wait after the last free wrong try; it doubles with each further one…
pub const FIRST_WAIT: Duration = Duration::from_secs(1);
/// …up to this: at most two guesses a minute.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// An address's wrong tries are forgotten this long after its last one.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Addresses counted at most (every kind together).
pub const MAX_ADDRESSES: usize = 10_000;
/// At most one warning per kind this often; the addresses in between are counted in it.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// What was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `admin.token` at `POST /admin/login`.
    ConsoleLogin,
    /// `admin.token` as the `/api/v1` Bearer token.
    AdminApi,
    /// A subscription's API key at its `/api/v1/subscriptions/{name}/…` endpoints.
    SubscriptionKey,
    /// `hooks.auth`'s secret header or query parameter.
    HookSecret,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::ConsoleLogin,
        Kind::AdminApi,
        Kind::SubscriptionKey,
        Kind::HookSecret,
    ];

    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ConsoleLogin => "console_login",
            Kind::AdminApi => "admin_api",
            Kind::SubscriptionKey => "subscription_key",
            Kind::HookSecret => "hook_secret",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::ConsoleLogin => "wrong admin tokens at the console login",
            Kind::AdminApi => "wrong admin API tokens",
            Kind::SubscriptionKey => "wrong subscription API keys",
            Kind::HookSecret => "wrong hooks.auth secrets",
        }
    }
}

#[derive(Debug)]
struct Entry {
    failures: u32,
    /// Tries let through and not yet judged.
    pending: u32,
    last: Instant,
    /// Past [`FREE`], no try before this.
    next_try: Instant,
}

#[derive(Debug, Default)]
struct Warned {
    last: Option<Instant>,
    /// Addresses that began a burst since the last warning.
    since: u64,
}

/// The failure counts of one server, shared by its workers.
#[derive(Debug)]
pub struct Throttle {
    entries: Mutex<HashMap<(Kind, IpAddr), Entry>>,
    warned: Mutex<HashMap<Kind, Warned>>,
    metrics: Arc<Metrics>,
    proxy_hint_given: AtomicBool,
}

/// A try let through: say how it went with [`Ticket::succeeded`] or [`Ticket::failed`]
/// (dropped unjudged, it is neither).
#[derive(Debug)]
pub struct Ticket<'t> {
    throttle: &'t Throttle,
    key: (Kind, IpAddr),
    judged: bool,
}

impl Ticket<'_> {
    /// The credential was right: the address starts afresh.
    pub fn succeeded(mut self) {
        self.judged = true;
        self.throttle.entries().remove(&self.key);
    }

    /// The credential was wrong. Returns whether this try was among the free ones, so the
    /// caller may log it; past them, only the one warning at the start of the burst is
    /// logged.
    pub fn failed(mut self) -> bool {
        self.judged = true;
        self.throttle.failed(self.key)
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.judged
            && let Some(entry) = self.throttle.entries().get_mut(&self.key)
        {
            entry.pending = entry.pending.saturating_sub(1);
        }
    }
}

/// The address as counted: IPv6 by its /64, which one subscriber usually has whole.
fn counted(ip: Option<IpAddr>) -> IpAddr {
    match ip {
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        Some(v4) => v4,
        // Behind a proxy whose X-Forwarded-For cannot be read: all such clients are one.
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// The wait after `failures` wrong tries (`FREE` or more).
fn wait_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(FREE).min(16);
    FIRST_WAIT.saturating_mul(1 << doublings).min(MAX_WAIT)
}

impl Throttle {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Throttle {
            entries: Mutex::new(HashMap::new()),
            warned: Mutex::new(HashMap::new()),
            metrics,
            proxy_hint_given: AtomicBool::new(false),
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<(Kind, IpAddr), Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Addresses counted now.
    pub fn addresses(&self) -> usize {
        self.entries().len()
    }

    /// The client's address (after `trusted_proxies`), saying once when the requests seem to
    /// come through a proxy belroute was not told about: then every client counts as the
    /// proxy, and one client's guessing slows everyone's.
    pub fn client(&self, req: &HttpRequest, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
        if trusted_proxies.is_empty()
            && req.headers().contains_key("x-forwarded-for")
            && !self.proxy_hint_given.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                peer = %req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default(),
                "requests carry X-Forwarded-For but hooks.auth.trusted_proxies is empty: wrong tokens are counted for the proxy's address, so one client's guessing slows every client behind it; list your proxy in hooks.auth.trusted_proxies"
            );
        }
        super::client::client_ip(req, trusted_proxies)
    }

    /// May `ip` try a credential of `kind` now? `Err` holds how long it must wait.
    pub fn check(&self, kind: Kind, ip: Option<IpAddr>) -> Result<Ticket<'_>, Duration> {
        let key = (kind, counted(ip));
        let now = Instant::now();
        let mut entries = self.entries();
        if !entries.contains_key(&key) && entries.len() >= MAX_ADDRESSES {
            make_room(&mut entries, now);
        }
        let tracked = entries.len();
        let entry = match entries.get_mut(&key) {
            Some(entry) => entry,
            None if tracked >= MAX_ADDRESSES => {
                // Every entry is in use this very moment: nobody new is let through.
                drop(entries);
                self.refused(kind);
                return Err(FIRST_WAIT);
            }
            None => entries.entry(key).or_insert(Entry {
                failures: 0,
                pending: 0,
                last: now,
                next_try: now,
            }),
        };
        let allowed = if entry.failures + entry.pending < FREE {
            true
        } else {
            entry.pending == 0 && now >= entry.next_try
        };
        if !allowed {
            let wait = if now < entry.next_try {
                entry.next_try - now
            } else {
                wait_after(entry.failures)
            };
            drop(entries);
            self.refused(kind);
            return Err(wait);
        }
        entry.pending += 1;
        drop(entries);
        self.metrics
            .auth_addresses
            .set(i64::try_from(tracked).unwrap_or(i64::MAX));
        Ok(Ticket {
            throttle: self,
            key,
            judged: false,
        })
    }

    fn refused(&self, kind: Kind) {
        self.metrics.auth_throttled(kind.as_str());
    }

    fn failed(&self, key: (Kind, IpAddr)) -> bool {
        let now = Instant::now();
        self.metrics.auth_failed(key.0.as_str());
        let failures = {
            let mut entries = self.entries();
            let Some(entry) = entries.get_mut(&key) else {
                return true;
            };
            entry.pending = entry.pending.saturating_sub(1);
            entry.failures = entry.failures.saturating_add(1);
            entry.last = now;
            if entry.failures >= FREE {
                entry.next_try = now + wait_after(entry.failures);
            }
            entry.failures
        };
        if failures == FREE {
            self.warn(key, now);
        }
        failures < FREE
    }

    /// One warning when an address starts to be slowed; at most one per kind per
    /// [`WARN_EVERY`], counting the addresses in between.
    fn warn(&self, (kind, ip): (Kind, IpAddr), now: Instant) {
        let mut warned = self
            .warned
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let state = warned.entry(kind).or_default();
        state.since += 1;
        if state.last.is_some_and(|last| now - last < WARN_EVERY) {
            return;
        }
        let others = state.since - 1;
        state.last = Some(now);
        state.since = 0;
        let address = if ip.is_unspecified() {
            "(unknown: its proxy's X-Forwarded-For cannot be read)".to_string()
        } else {
            ip.to_string()
        };
        tracing::warn!(
            kind = kind.as_str(),
            client = %address,
            "{FREE} {} from {address}: its further tries wait 1s, doubling up to {}s, and are answered 429 meanwhile (counted in belroute_auth_throttled_total){}",
            kind.what(),
            MAX_WAIT.as_secs(),
            if others > 0 {
                format!("; {others} other address(es) began such a burst in the last {}s", WARN_EVERY.as_secs())
            } else {
                String::new()
            }
        );
    }
}

/// Makes room at the bound: forgotten entries go, then the oldest tenth not in use.
fn make_room(entries: &mut HashMap<(Kind, IpAddr), Entry>, now: Instant) {
    entries.retain(|_, e| e.pending > 0 || now.saturating_duration_since(e.last) < FORGET_AFTER);
    if entries.len() < MAX_ADDRESSES {
        return;
    }
    let mut idle: Vec<(Instant, (Kind, IpAddr))> = entries
        .iter()
        .filter(|(_, e)| e.pending == 0)
        .map(|(k, e)| (e.last, *k))
        .collect();
    let evict = (MAX_ADDRESSES / 10).min(idle.len());
    if evict == 0 {
        return;
    }
    idle.select_nth_unstable_by_key(evict - 1, |(last, _)| *last);
    for (_, key) in &idle[..evict] {
        entries.remove(key);
    }
}

/// `Retry-After` in whole seconds, at least 1.
pub fn retry_after(wait: Duration) -> String {
    wait.as_secs_f64().ceil().max(1.0).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        let router =
            Arc::new(crate::app::offline_router(&crate::config::Config::default()).unwrap());
        let storage = crate::storage::Storage::open("sqlite::memory:").unwrap();
        // Nothing in the working directory: a spill file of its own.
        let dir = tempfile::tempdir().unwrap().keep();
        let call_log = Arc::new(
            crate::storage::CallLog::start(
                std::sync::Arc::new(storage),
                crate::storage::WriterSettings {
                    spill: dir.join("spill.jsonl"),
                    ..crate::storage::WriterSettings::default()
                },
                Arc::new(crate::storage::NoSubscribers),
            )
            .unwrap(),
        );
        Throttle::new(Arc::new(Metrics::new(router, call_log)))
    }

    #[test]
    fn waits_double_up_to_the_most() {
        assert_eq!(wait_after(FREE), Duration::from_secs(1));
        assert_eq!(wait_after(FREE + 1), Duration::from_secs(2));
        assert_eq!(wait_after(FREE + 4), Duration::from_secs(16));
        assert_eq!(wait_after(FREE + 5), MAX_WAIT);
        assert_eq!(wait_after(u32::MAX), MAX_WAIT);
        assert_eq!(retry_after(Duration::from_millis(1)), "1");
        assert_eq!(retry_after(Duration::from_millis(1500)), "2");
    }

    #[test]
    fn ipv6_counts_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(counted(Some(a)), counted(Some(b)));
        assert_ne!(counted(Some(a)), counted(Some(c)));
        let mapped: IpAddr = "::ffff:203.0.113.9".parse().unwrap();
        assert_eq!(
            counted(Some(mapped)),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }

    #[tokio::test]
    async fn concurrent_tries_past_the_free_ones_are_refused() {
        let throttle = throttle();
        let ip = Some("203.0.113.9".parse().unwrap());
        let other = Some("203.0.113.10".parse().unwrap());
        for i in 0..FREE {
            let free = throttle.check(Kind::AdminApi, ip).unwrap().failed();
            assert_eq!(free, i + 1 < FREE, "try {i}");
        }
        // Past the free tries, the next must wait; other kinds and addresses do not.
        assert!(throttle.check(Kind::AdminApi, ip).is_err());
        assert!(throttle.check(Kind::ConsoleLogin, ip).is_ok());
        throttle.check(Kind::AdminApi, other).unwrap().succeeded();
        // A batch of tries at once from a fresh address: only the free ones are let through.
        let fresh = Some("198.51.100.1".parse().unwrap());
        let tickets: Vec<_> = (0..FREE + 5)
            .filter_map(|_| throttle.check(Kind::HookSecret, fresh).ok())
            .collect();
        assert_eq!(tickets.len(), FREE as usize);
    }

    #[tokio::test]
    async fn the_table_stays_bounded_when_addresses_rotate() {
        let throttle = throttle();
        for i in 0..(MAX_ADDRESSES as u32 + 5_000) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            throttle.check(Kind::AdminApi, Some(ip)).unwrap().failed();
            assert!(throttle.addresses() <= MAX_ADDRESSES);
        }
    }
}
