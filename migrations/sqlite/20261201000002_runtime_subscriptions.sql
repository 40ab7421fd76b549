-- Subscriptions managed while running (the admin API and console), beside those of
-- belroute.yaml. Every instance on one database reloads this table every few seconds.
-- endpoint and headers are stored as written (`${NAME}` expanded at use, as in belroute.yaml);
-- durations in milliseconds. The API key is stored as its SHA-256 (hex); after a rotation the
-- previous key's hash stays valid until previous_key_until (ms since the epoch).
CREATE TABLE subscriptions (
    name                  TEXT    PRIMARY KEY,
    status                TEXT    NOT NULL,  -- active | off
    endpoint              TEXT,
    headers               TEXT    NOT NULL,  -- JSON object, values as written
    events                TEXT    NOT NULL,  -- JSON list: call.routed, call.agent
    visibility_timeout_ms BIGINT  NOT NULL,
    max_retries           BIGINT  NOT NULL,
    retry_initial_ms      BIGINT  NOT NULL,
    retry_max_ms          BIGINT  NOT NULL,
    renotify_after_ms     BIGINT  NOT NULL,
    api_key_hash          TEXT    NOT NULL,
    previous_key_hash     TEXT,
    previous_key_until    BIGINT,
    -- Bumped by every change: instances rebuild a subscription whose revision moved.
    revision              BIGINT  NOT NULL,
    created_at            BIGINT  NOT NULL,
    updated_at            BIGINT  NOT NULL
);
