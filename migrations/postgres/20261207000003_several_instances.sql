-- Several instances on one database (issue 24). Times are milliseconds since the Unix epoch.
-- Only additions: an instance of the previous release keeps working beside a new one.

-- With rules.source: database, the version of each rule set every instance serves: the
-- revision published last. hash NULL: the rule set was removed.
CREATE TABLE rule_heads (
    ruleset      TEXT    PRIMARY KEY,
    hash         TEXT,
    published_at BIGINT  NOT NULL,
    author       TEXT    NOT NULL
);

-- What one instance tells the others (a rule set published, a caller's cached answers
-- forgotten, a breaker reset). Instances read the rows after the last one they read; rows
-- older than an hour go.
CREATE TABLE broadcasts (
    id        BIGSERIAL PRIMARY KEY,
    at        BIGINT  NOT NULL,
    instance  TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    subject   TEXT    NOT NULL
);

-- Console sessions, so that any instance serves any page. Only the SHA-256 (hex) of the
-- session id is stored; the CSRF token is useless without the session.
CREATE TABLE console_sessions (
    id_hash     TEXT    PRIMARY KEY,
    csrf        TEXT    NOT NULL,
    name        TEXT    NOT NULL,  -- the token's name
    role        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    last_used   BIGINT  NOT NULL
);
CREATE INDEX console_sessions_by_use ON console_sessions (last_used);

-- Each running instance and the versions it serves, written every few seconds: /readyz and
-- the console show them.
CREATE TABLE instances (
    id          TEXT    PRIMARY KEY,
    host        TEXT    NOT NULL,
    started_at  BIGINT  NOT NULL,
    seen_at     BIGINT  NOT NULL,
    draining    BIGINT  NOT NULL,  -- 0 or 1
    versions    TEXT    NOT NULL   -- JSON object: rule set → version
);
