-- `history` reads a caller's most recent calls (up to 50) on every call. Through
-- calls_by_caller each of them was a row of `calls` read from wherever it lies on disk: once a
-- caller had 50 calls, 50 random pages per call, so a call cost more the longer the log ran.
-- This index holds what `history` reads, a caller's entries side by side: its recent calls are
-- read from a page or two of the index and no row of `calls` at all. It serves every other
-- lookup by caller (and caller and time) too, so the old index goes; a build before this one
-- works the same without it (no query names an index).
CREATE INDEX calls_by_caller_recent ON calls (caller_e164, received_at, id, route, rule, agent);
DROP INDEX IF EXISTS calls_by_caller;
