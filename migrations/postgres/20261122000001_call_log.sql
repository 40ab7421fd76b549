-- The call log: every webhook call, the route answered and why. Times are milliseconds since
-- the Unix epoch (UTC), the same in SQLite and PostgreSQL.
CREATE TABLE calls (
    id          BIGSERIAL PRIMARY KEY,
    uuid        TEXT    NOT NULL,
    received_at BIGINT  NOT NULL,
    ruleset     TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    caller_raw  TEXT    NOT NULL,
    -- Empty for withheld and invalid numbers: they never match one another.
    caller_e164 TEXT    NOT NULL,
    route       TEXT    NOT NULL,
    rule        TEXT,
    reason      TEXT    NOT NULL,
    micros      BIGINT  NOT NULL,
    -- The call fields as received (JSON object).
    call_data   TEXT    NOT NULL,
    -- The decision trace: normalised caller, every rule's and lookup's outcome (JSON).
    trace       TEXT    NOT NULL,
    -- The last agent reported for this call, and when.
    agent       TEXT,
    agent_at    BIGINT
);
CREATE INDEX calls_by_caller ON calls (caller_e164, received_at);
CREATE INDEX calls_by_uuid ON calls (uuid);
CREATE INDEX calls_by_time ON calls (received_at);

-- Every agent report, oldest first; calls.agent holds the latest.
CREATE TABLE agent_reports (
    id          BIGSERIAL PRIMARY KEY,
    call_id     BIGINT  NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    agent       TEXT    NOT NULL,
    reported_at BIGINT  NOT NULL
);
CREATE INDEX agent_reports_by_call ON agent_reports (call_id);
