//! The `history` plugin's answers kept in memory, for a call log only this process writes (a
//! SQLite file, which one server uses at a time). A caller's first lookup reads
//! the database once ([`Storage::history_snapshot`]); from then on every call this process
//! writes for them, and every agent report, updates or drops what is kept, so later lookups
//! need no trip to the database's thread. Answers are the database's, exactly: where memory
//! cannot know (a call written out of order, a counted call that left the window, another
//! history plugin's prefix or a longer window), it asks the database again.
//!
//! With PostgreSQL, several instances write one log: none of them sees all writes, so none
//! keeps history in memory and `history` asks the database on every call. Several instances on
//! one SQLite file (possible with their own spill files) are found out and then do the same:
//! memory answers only while the cluster's heartbeat sees no other instance, and it forgets
//! everything when a write of this process finds rows it did not write before its own.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use belroute_plugins::history::{CallHistory, HistoryQuery, PastCall};

use super::events::EventSink;
use super::replay::{PageCursor, ReplayWindow};
use super::{CallRow, CallStore, HistorySnapshot, LoggedCall, Storage, StoreError};

/// [`Storage`] with the history of its most recent callers in memory: the call log writes
/// through it (as a [`CallStore`]) and `history` reads through it (as a [`CallHistory`]).
#[derive(Debug)]
pub struct RecentCalls {
    storage: Storage,
    callers: moka::sync::Cache<String, Arc<Mutex<Kept>>>,
    /// `history` lookups answered from memory, and by the database.
    from_memory: AtomicU64,
    from_database: AtomicU64,
    /// The heartbeat saw no other instance on this database (until it has looked: no).
    alone: AtomicBool,
    /// The last id this process wrote: a write whose first id does not follow it found rows
    /// another process wrote.
    last_written: AtomicI64,
}

/// What is kept of one caller.
#[derive(Debug, Default)]
enum Kept {
    /// Nothing yet (or dropped): the next lookup reads the database.
    #[default]
    Nothing,
    /// A lookup is reading the database: calls written meanwhile wait here, by id; an agent
    /// report meanwhile spoils what it will read.
    Reading {
        written: Vec<(i64, PastCall)>,
        spoiled: bool,
    },
    Known(Box<Known>),
}

/// One caller's history as one plugin asks for it, as the database would answer it.
#[derive(Debug)]
struct Known {
    /// What it answers: these limit and agent route prefix, and windows from this start on.
    limit: i64,
    prefix: String,
    window_ms: i64,
    /// The newest call id it has seen: rows with a higher id are news to it.
    as_of: i64,
    /// The newest call in the window.
    newest: Option<PastCall>,
    /// The newest with an agent among the `limit` most recent, and how many are newer.
    with_agent: Option<(PastCall, i64)>,
    /// The caller's calls since `window_ms`, and since `today_ms`.
    window_calls: i64,
    today_ms: i64,
    today_calls: i64,
    /// The oldest call counted in `window_calls`: while windows start at or before it, they
    /// count the same calls.
    oldest: Option<i64>,
}

type Answer = (Vec<PastCall>, Option<(i64, i64)>);

/// What memory makes of a question.
#[derive(Debug)]
enum FromMemory {
    Answer(Answer),
    /// Its question, but memory cannot know the answer now: read it, and keep what is read.
    Stale,
    /// Another plugin's question (another prefix or limit, a longer window): the database
    /// answers it, and what is kept stays.
    NotKept,
}

/// `history`'s test: the call went to an agent, reported or named by its route.
fn has_agent(call: &PastCall, prefix: &str) -> bool {
    call.agent.is_some()
        || (!prefix.is_empty() && call.route.len() > prefix.len() && call.route.starts_with(prefix))
}

impl Known {
    fn new(snapshot: HistorySnapshot, asked: &HistoryQuery<'_>) -> Self {
        let mut calls = snapshot.calls.into_iter();
        let newest = calls.next();
        let with_agent = calls
            .next()
            .zip(snapshot.agent_rank)
            .map(|(call, rank)| (call, rank - 1));
        let (window_calls, today_calls) = snapshot.counts.unwrap_or((0, 0));
        Known {
            limit: asked.limit,
            prefix: asked.agent_route_prefix.to_string(),
            window_ms: asked.window_ms,
            as_of: snapshot.as_of,
            newest,
            with_agent,
            window_calls,
            today_ms: asked.today_ms,
            today_calls,
            oldest: snapshot.oldest,
        }
    }

    /// The answer, if memory knows it. May move "today" on to a new day the caller has not
    /// called in yet.
    fn answer(&mut self, asked: &HistoryQuery<'_>) -> FromMemory {
        if asked.limit != self.limit
            || asked.agent_route_prefix != self.prefix
            || asked.window_ms < self.window_ms
        {
            return FromMemory::NotKept;
        }
        if asked.today_ms < self.today_ms {
            return FromMemory::Stale;
        }
        let Some(newest) = self
            .newest
            .as_ref()
            .filter(|c| c.received_at_ms >= asked.window_ms)
        else {
            return FromMemory::Answer((Vec::new(), None));
        };
        if self.oldest.is_some_and(|oldest| oldest < asked.window_ms) {
            return FromMemory::Stale;
        }
        if asked.today_ms != self.today_ms {
            if newest.received_at_ms >= asked.today_ms {
                return FromMemory::Stale;
            }
            self.today_ms = asked.today_ms;
            self.today_calls = 0;
        }
        let mut calls = vec![newest.clone()];
        if let Some((call, _)) = &self.with_agent
            && call.received_at_ms >= asked.window_ms
        {
            calls.push(call.clone());
        }
        FromMemory::Answer((calls, Some((self.window_calls, self.today_calls))))
    }

    /// A call written after the database was read; `false` when memory cannot follow it.
    fn written(&mut self, id: i64, call: PastCall) -> bool {
        if id <= self.as_of {
            return true;
        }
        self.as_of = id;
        let since = self
            .newest
            .as_ref()
            .map_or(self.window_ms, |newest| newest.received_at_ms);
        if call.received_at_ms < since {
            return false;
        }
        self.window_calls += 1;
        self.oldest.get_or_insert(call.received_at_ms);
        if call.received_at_ms >= self.today_ms {
            self.today_calls += 1;
        }
        if let Some((_, newer)) = &mut self.with_agent {
            *newer += 1;
            if *newer >= self.limit {
                self.with_agent = None;
            }
        }
        if has_agent(&call, &self.prefix) {
            self.with_agent = Some((call.clone(), 0));
        }
        self.newest = Some(call);
        true
    }
}

fn lock(slot: &Mutex<Kept>) -> MutexGuard<'_, Kept> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Puts a slot a lookup left mid-read (its call's deadline came) back to `Nothing`.
struct Reading<'a>(&'a Mutex<Kept>);

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        let mut kept = lock(self.0);
        if matches!(*kept, Kept::Reading { .. }) {
            *kept = Kept::Nothing;
        }
    }
}

impl RecentCalls {
    /// Keeps the history of at most `callers` callers (the most recently and frequently
    /// asked for).
    pub fn new(storage: Storage, callers: u64) -> Self {
        RecentCalls {
            storage,
            callers: moka::sync::Cache::new(callers),
            from_memory: AtomicU64::new(0),
            from_database: AtomicU64::new(0),
            alone: AtomicBool::new(false),
            last_written: AtomicI64::new(0),
        }
    }

    /// The heartbeat saw `others` other instances on this database: memory answers only while
    /// there are none (another writer's calls would not reach it).
    pub fn others_seen(&self, others: usize) {
        let alone = others == 0;
        if self.alone.swap(alone, Ordering::SeqCst) && !alone {
            self.forget();
            tracing::warn!(
                "another belroute instance uses this SQLite call log: `history` asks the database on every call while it does; run several instances on PostgreSQL (docs/operators.md, One instance or several)"
            );
        }
    }

    /// `history` lookups answered from memory, and by the database, since the start.
    pub fn answered(&self) -> (u64, u64) {
        (
            self.from_memory.load(Ordering::Relaxed),
            self.from_database.load(Ordering::Relaxed),
        )
    }

    /// Forgets everything: the log changed in a way memory cannot follow (retention).
    pub fn forget(&self) {
        self.callers.invalidate_all();
    }

    /// Hands each written row, in id order, to what is kept of its caller.
    fn written(&self, rows: &[CallRow], numbers: &[(usize, i64)]) {
        let (Some(first), Some(last)) = (
            numbers.iter().map(|(_, id)| *id).min(),
            numbers.iter().map(|(_, id)| *id).max(),
        ) else {
            return;
        };
        let before = self.last_written.swap(last, Ordering::SeqCst);
        if before != 0 && first != before + 1 {
            // Rows between this process's writes: another writer. Nothing kept can be trusted.
            self.forget();
        }
        for &(index, id) in numbers {
            let Some(row) = rows.get(index) else { continue };
            let Some(slot) = self.callers.get(row.caller_e164.as_str()) else {
                continue;
            };
            let call = PastCall {
                received_at_ms: row.received_at,
                route: row.route.clone(),
                rule: row.rule.clone(),
                agent: None,
            };
            let mut kept = lock(&slot);
            match &mut *kept {
                Kept::Nothing => {}
                Kept::Reading { written, .. } => written.push((id, call)),
                Kept::Known(known) => {
                    if !known.written(id, call) {
                        *kept = Kept::Nothing;
                    }
                }
            }
        }
    }

    async fn read(&self, asked: &HistoryQuery<'_>) -> Result<Answer, sqlx::Error> {
        self.from_database.fetch_add(1, Ordering::Relaxed);
        self.storage.last_calls_and_counts(asked).await
    }

    async fn answer(&self, asked: &HistoryQuery<'_>) -> Result<Answer, sqlx::Error> {
        let caller = asked.caller_e164;
        if caller.is_empty() || asked.window_ms < 0 || !self.alone.load(Ordering::SeqCst) {
            return self.read(asked).await;
        }
        let slot = self
            .callers
            .get_with_by_ref(caller, || Arc::new(Mutex::new(Kept::Nothing)));
        // Answered from memory; or read and kept; or read only: another plugin's question, or
        // one already being read.
        let keep = {
            let mut kept = lock(&slot);
            let keep = match &mut *kept {
                Kept::Known(known) => match known.answer(asked) {
                    FromMemory::Answer(answer) => {
                        self.from_memory.fetch_add(1, Ordering::Relaxed);
                        return Ok(answer);
                    }
                    FromMemory::Stale => true,
                    FromMemory::NotKept => false,
                },
                Kept::Reading { .. } => false,
                Kept::Nothing => true,
            };
            if keep {
                *kept = Kept::Reading {
                    written: Vec::new(),
                    spoiled: false,
                };
            }
            keep
        };
        if !keep {
            return self.read(asked).await;
        }
        let reading = Reading(&slot);
        self.from_database.fetch_add(1, Ordering::Relaxed);
        let snapshot = self.storage.history_snapshot(asked).await?;
        let answer = (snapshot.calls.clone(), snapshot.counts);
        read_done(reading.0, snapshot, asked);
        Ok(answer)
    }
}

/// A read of the database is done: what it found, with the calls written meanwhile, is kept
/// (unless an agent report spoiled it, or another read or a drop came in between).
fn read_done(slot: &Mutex<Kept>, snapshot: HistorySnapshot, asked: &HistoryQuery<'_>) {
    let mut kept = lock(slot);
    if let Kept::Reading { written, spoiled } = std::mem::take(&mut *kept)
        && !spoiled
    {
        let mut known = Known::new(snapshot, asked);
        if written
            .into_iter()
            .all(|(id, call)| known.written(id, call))
        {
            *kept = Kept::Known(Box::new(known));
        }
    }
}

/// The call log writes through memory: each committed row, and each agent report, reaches
/// what is kept of its caller.
#[async_trait]
impl CallStore for RecentCalls {
    fn kind(&self) -> &'static str {
        self.storage.kind()
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        CallStore::migrate(&self.storage).await
    }

    async fn insert_rows(
        &self,
        rows: &[CallRow],
        events: &dyn EventSink,
        skip_existing: bool,
    ) -> Result<u64, StoreError> {
        let (inserted, numbers) = self
            .storage
            .insert_rows_numbered(rows, events, skip_existing, true)
            .await
            .map_err(|e| self.storage.store_error(&e))?;
        self.written(rows, &numbers);
        Ok(inserted)
    }

    async fn report_agent(
        &self,
        uuid: &str,
        agent: &str,
        at_ms: i64,
        events: &dyn EventSink,
    ) -> Result<bool, StoreError> {
        let caller = self
            .storage
            .report_agent_of_caller(uuid, agent, at_ms, events)
            .await
            .map_err(|e| self.storage.store_error(&e))?;
        let Some(caller) = caller else {
            return Ok(false);
        };
        if let Some(slot) = self.callers.get(caller.as_str()) {
            let mut kept = lock(&slot);
            match &mut *kept {
                Kept::Reading { spoiled, .. } => *spoiled = true,
                _ => *kept = Kept::Nothing,
            }
        }
        Ok(true)
    }

    async fn replay_page(
        &self,
        window: &ReplayWindow,
        after: Option<PageCursor>,
        limit: i64,
    ) -> Result<Vec<LoggedCall>, StoreError> {
        CallStore::replay_page(&self.storage, window, after, limit).await
    }
}

#[async_trait]
impl CallHistory for RecentCalls {
    async fn recent(
        &self,
        caller_e164: &str,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<PastCall>, String> {
        self.storage.recent(caller_e164, since_ms, limit).await
    }

    async fn counts(
        &self,
        caller_e164: &str,
        window_ms: i64,
        today_ms: i64,
    ) -> Result<(i64, i64), String> {
        self.storage.counts(caller_e164, window_ms, today_ms).await
    }

    async fn last_calls_and_counts(
        &self,
        query: &HistoryQuery<'_>,
    ) -> Result<(Vec<PastCall>, Option<(i64, i64)>), String> {
        self.answer(query)
            .await
            .map_err(|e| super::history_error(&e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::storage::NoSubscribers;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;
    const CALLERS: [&str; 4] = [
        "+31612345601",
        "+31612345602",
        "+31612345603",
        "+31201234567",
    ];
    const ROUTES: [&str; 5] = ["receptie", "agent_12", "agent_", "finance", "agent_7"];

    fn query<'a>(
        caller_e164: &'a str,
        window_ms: i64,
        today_ms: i64,
        limit: i64,
        agent_route_prefix: &'a str,
    ) -> HistoryQuery<'a> {
        HistoryQuery {
            caller_e164,
            window_ms,
            today_ms,
            limit,
            agent_route_prefix,
        }
    }

    async fn sqlite(dir: &tempfile::TempDir) -> Storage {
        let url = format!("sqlite://{}", dir.path().join("log.db").display());
        let storage = Storage::open(&url).unwrap();
        storage.migrate().await.unwrap();
        storage
    }

    fn row(caller: &str, at: i64, route: &str, uuid: String) -> CallRow {
        CallRow {
            uuid,
            received_at: at,
            ruleset: "main".into(),
            version: "v".into(),
            caller_raw: caller.into(),
            caller_e164: caller.into(),
            caller_anonymous: false,
            route: route.into(),
            rule: Some(format!("rule {route}")),
            reason: "matched".into(),
            micros: 10,
            call_data: "{}".into(),
            trace: "{}".into(),
        }
    }

    /// What memory answers, against what the database answers, for each caller.
    async fn agree(
        recent: &RecentCalls,
        storage: &Storage,
        now: i64,
        window: i64,
        limit: i64,
        prefix: &str,
        step: &str,
    ) {
        let window_ms = now - window;
        // "Today" as the plugin has it: midnight (UTC here), not before the window.
        let today_ms = (now - now.rem_euclid(DAY)).max(window_ms);
        for caller in CALLERS {
            let kept = recent
                .last_calls_and_counts(&query(caller, window_ms, today_ms, limit, prefix))
                .await
                .unwrap();
            let stored = storage
                .last_calls_and_counts(&query(caller, window_ms, today_ms, limit, prefix))
                .await
                .unwrap();
            assert_eq!(
                kept, stored,
                "{step}: {caller} at {now} (window {window}, limit {limit}, prefix {prefix:?})"
            );
        }
    }

    /// Random writes (some out of order, some at the same millisecond), agent reports, days
    /// and windows passing, a second plugin's questions: every answer from memory is the
    /// database's.
    #[tokio::test]
    async fn memory_answers_what_the_database_answers() {
        let dir = tempfile::tempdir().unwrap();
        let storage = sqlite(&dir).await;
        let recent = RecentCalls::new(storage.clone(), 100);
        recent.others_seen(0);
        let mut rng = fastrand::Rng::with_seed(25);
        let mut now: i64 = 1_796_083_200_000; // 2026-12-01T00:00Z
        let mut uuids = Vec::new();
        let (window, limit) = (2 * DAY, 4);
        for step in 0..600 {
            match rng.u8(0..10) {
                0..=4 => {
                    let rows: Vec<CallRow> = (0..rng.usize(1..4))
                        .map(|i| {
                            let at = match rng.u8(0..10) {
                                0 => now - rng.i64(0..3 * DAY),
                                1 => now - 1,
                                _ => now,
                            };
                            let uuid = format!("u{step}-{i}");
                            uuids.push(uuid.clone());
                            row(
                                CALLERS[rng.usize(0..CALLERS.len())],
                                at,
                                ROUTES[rng.usize(0..ROUTES.len())],
                                uuid,
                            )
                        })
                        .collect();
                    CallStore::insert_rows(&recent, &rows, &NoSubscribers, false)
                        .await
                        .unwrap();
                }
                5 if !uuids.is_empty() => {
                    let uuid = &uuids[rng.usize(0..uuids.len())];
                    let found = CallStore::report_agent(&recent, uuid, "1003", now, &NoSubscribers)
                        .await
                        .unwrap();
                    assert!(found);
                }
                6 => now += rng.i64(0..8 * HOUR),
                _ => now += rng.i64(0..60_000),
            }
            let step = format!("step {step}");
            agree(&recent, &storage, now, window, limit, "agent_", &step).await;
            if rng.u8(0..8) == 0 {
                // Another plugin: a longer window, another prefix, another limit.
                agree(&recent, &storage, now, 3 * DAY, limit, "agent_", &step).await;
                agree(&recent, &storage, now, window, limit, "", &step).await;
                agree(&recent, &storage, now, window, 50, "agent_", &step).await;
            }
        }
        let (memory, database) = recent.answered();
        assert!(
            memory > database,
            "memory answered {memory} lookups, the database {database}"
        );
        // A withheld caller is the database's to answer, as before.
        assert_eq!(
            recent
                .last_calls_and_counts(&query("", now - window, now - window, limit, "agent_"))
                .await
                .unwrap(),
            (Vec::new(), None)
        );
    }

    /// The ids a write hands to memory are the rows' ids in the database, in a batch too.
    #[tokio::test]
    async fn written_rows_carry_their_ids() {
        let dir = tempfile::tempdir().unwrap();
        let storage = sqlite(&dir).await;
        for batch in [1, 3, 7] {
            let rows: Vec<CallRow> = (0..batch)
                .map(|i| {
                    row(
                        CALLERS[i % 4],
                        1_000 + i as i64,
                        "receptie",
                        format!("b{batch}-{i}"),
                    )
                })
                .collect();
            let (inserted, numbers) = storage
                .insert_rows_numbered(&rows, &NoSubscribers, false, true)
                .await
                .unwrap();
            assert_eq!(inserted, batch as u64);
            assert_eq!(numbers.len(), batch);
            for (index, id) in numbers {
                let Storage::Sqlite(pool) = &storage else {
                    unreachable!()
                };
                let stored: i64 = sqlx::query_scalar("SELECT id FROM calls WHERE uuid = $1")
                    .bind(&rows[index].uuid)
                    .fetch_one(pool)
                    .await
                    .unwrap();
                assert_eq!(id, stored, "{}", rows[index].uuid);
            }
        }
    }

    /// A call written while a lookup reads the database: kept whether the read saw it or
    /// not, and counted once.
    #[tokio::test]
    async fn a_call_written_during_a_read_is_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let storage = sqlite(&dir).await;
        let recent = RecentCalls::new(storage.clone(), 100);
        recent.others_seen(0);
        let now: i64 = 1_796_083_200_000 + 10 * HOUR;
        let caller = CALLERS[0];
        let asked = query(caller, now - DAY, now - 10 * HOUR, 4, "agent_");
        let write = |route: &'static str, uuid: &'static str| {
            let rows = [row(caller, now, route, uuid.into())];
            let recent = &recent;
            async move {
                CallStore::insert_rows(recent, &rows, &NoSubscribers, false)
                    .await
                    .unwrap()
            }
        };
        write("receptie", "first").await;
        for read_sees_it in [false, true] {
            recent.forget();
            let slot = recent
                .callers
                .get_with_by_ref(caller, || Arc::new(Mutex::new(Kept::Nothing)));
            *lock(&slot) = Kept::Reading {
                written: Vec::new(),
                spoiled: false,
            };
            let snapshot = if read_sees_it {
                write("agent_12", "seen").await;
                storage.history_snapshot(&asked).await.unwrap()
            } else {
                let snapshot = storage.history_snapshot(&asked).await.unwrap();
                write("agent_12", "unseen").await;
                snapshot
            };
            read_done(&slot, snapshot, &asked);
            assert!(matches!(*lock(&slot), Kept::Known(_)), "{read_sees_it}");
            let kept = recent.last_calls_and_counts(&asked).await.unwrap();
            let stored = storage.last_calls_and_counts(&asked).await.unwrap();
            assert_eq!(kept, stored, "the read saw the call: {read_sees_it}");
        }
        let (_, counts) = storage.last_calls_and_counts(&asked).await.unwrap();
        assert_eq!(counts, Some((3, 3)));
    }

    async fn ask(recent: &RecentCalls, now: i64) -> Answer {
        recent
            .last_calls_and_counts(&query(CALLERS[0], now - DAY, now - 10 * HOUR, 4, "agent_"))
            .await
            .unwrap()
    }

    async fn write(recent: &RecentCalls, caller: &str, at: i64, uuid: &str) {
        let rows = [row(caller, at, "receptie", uuid.into())];
        CallStore::insert_rows(recent, &rows, &NoSubscribers, false)
            .await
            .unwrap();
    }

    /// Two processes writing one SQLite file: each finds the other's rows at its next write
    /// and forgets what it kept; told of another instance, it asks the database.
    #[tokio::test]
    async fn a_second_writer_is_found_out() {
        let dir = tempfile::tempdir().unwrap();
        let storage = sqlite(&dir).await;
        let (a, b) = (
            RecentCalls::new(storage.clone(), 100),
            RecentCalls::new(storage.clone(), 100),
        );
        a.others_seen(0);
        let now: i64 = 1_796_083_200_000 + 10 * HOUR;
        let caller = CALLERS[0];
        write(&a, caller, now, "a1").await;
        ask(&a, now).await;
        write(&a, caller, now, "a2").await;
        assert_eq!(ask(&a, now).await.1, Some((2, 2)));
        assert_eq!(a.answered().0, 1, "the second lookup from memory");
        // B writes the caller's third call; A's next write (another caller's) finds it.
        write(&b, caller, now, "b1").await;
        write(&a, CALLERS[1], now, "a3").await;
        assert_eq!(ask(&a, now).await.1, Some((3, 3)));
        assert_eq!(a.answered().0, 1, "read again, not from memory");
        // Told of another instance, A asks the database every time.
        a.others_seen(1);
        write(&b, caller, now, "b2").await;
        assert_eq!(ask(&a, now).await.1, Some((4, 4)));
        assert_eq!(ask(&a, now).await.1, Some((4, 4)));
        assert_eq!(a.answered().0, 1);
    }

    /// Lookups while the writer writes: once it stops, what memory kept is what the database
    /// holds (no write fell between a lookup's read and what it kept).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_during_a_read_are_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let storage = sqlite(&dir).await;
        let recent = Arc::new(RecentCalls::new(storage.clone(), 100));
        recent.others_seen(0);
        let now: i64 = 1_796_083_200_000 + 10 * HOUR;
        let writer = {
            let recent = recent.clone();
            tokio::spawn(async move {
                for batch in 0..300_i64 {
                    let rows: Vec<CallRow> = (0..3)
                        .map(|i| {
                            let caller = CALLERS[((batch + i) % 4) as usize];
                            row(
                                caller,
                                now - 300 + batch,
                                ROUTES[((batch * 3 + i) % 5) as usize],
                                format!("w{batch}-{i}"),
                            )
                        })
                        .collect();
                    CallStore::insert_rows(recent.as_ref(), &rows, &NoSubscribers, false)
                        .await
                        .unwrap();
                    if batch % 7 == 0 && batch < 250 {
                        // Forget now and then: the next lookups read again, mid-writes.
                        recent.forget();
                    }
                }
            })
        };
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let recent = recent.clone();
                let writer = writer.abort_handle();
                tokio::spawn(async move {
                    while !writer.is_finished() {
                        // Answers from memory do not yield: let the writer run.
                        tokio::task::yield_now().await;
                        for caller in CALLERS {
                            recent
                                .last_calls_and_counts(&query(
                                    caller,
                                    now - DAY,
                                    now - 10 * HOUR,
                                    4,
                                    "agent_",
                                ))
                                .await
                                .unwrap();
                        }
                    }
                })
            })
            .collect();
        writer.await.unwrap();
        for reader in readers {
            reader.await.unwrap();
        }
        let mut known = 0;
        for caller in CALLERS {
            let slot = recent.callers.get(caller).unwrap();
            known += usize::from(matches!(*lock(&slot), Kept::Known(_)));
        }
        assert!(known > 0, "memory kept none of the callers");
        agree(&recent, &storage, now, DAY, 4, "agent_", "after the writes").await;
        let (_, counts) = storage
            .last_calls_and_counts(&query(CALLERS[0], now - DAY, now - 10 * HOUR, 4, "agent_"))
            .await
            .unwrap();
        assert_eq!(
            counts,
            Some((225, 225)),
            "the writer's calls of the first caller"
        );
    }
}
