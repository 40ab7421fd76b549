-- Changing routing safely (issue 22): every version of a rule file belroute loaded, who
-- changed what, and the tokens that may. Times are milliseconds since the Unix epoch (UTC).

-- Every version of a rule file belroute loaded (from disk, the console, the API or a
-- restore), stored once by its content hash: the `version` a call row carries.
CREATE TABLE revisions (
    ruleset      TEXT    NOT NULL,
    hash         TEXT    NOT NULL,
    content      TEXT    NOT NULL,
    -- When this content was first loaded.
    loaded_at    BIGINT  NOT NULL,
    source       TEXT    NOT NULL,  -- file | console | api | restore
    author       TEXT    NOT NULL,  -- the token's name; `file` when saved on disk
    note         TEXT    NOT NULL,
    -- When it last stopped serving; NULL while it serves. Retention keeps a revision while a
    -- retained call can point at it, and the last 100 of each rule set.
    served_until BIGINT,
    PRIMARY KEY (ruleset, hash)
);
CREATE INDEX revisions_by_time ON revisions (ruleset, loaded_at);

-- Every change: rule sets (published, restored, saved on disk), tokens, subscriptions.
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      BIGINT  NOT NULL,
    actor   TEXT    NOT NULL,  -- the token's name, `file`, or `belroute`
    action  TEXT    NOT NULL,  -- e.g. ruleset.publish, token.create
    target  TEXT    NOT NULL,  -- what it changed: a rule set, token or subscription name
    detail  TEXT    NOT NULL   -- JSON object
);
CREATE INDEX audit_by_time ON audit (at);

-- Tokens created at run time, each with one role; admin.token in belroute.yaml is the
-- bootstrap admin beside them. Only the token's SHA-256 (hex) is stored.
CREATE TABLE tokens (
    name        TEXT    PRIMARY KEY,
    role        TEXT    NOT NULL,  -- admin | editor | viewer | agent
    token_hash  TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL,
    created_by  TEXT    NOT NULL
);
