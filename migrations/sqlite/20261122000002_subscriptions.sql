-- Routing events for subscribers (the Koppeltaal pattern): one row per event, one delivery row
-- per subscription that wants it, claimed with GetNextNewAndClaim.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL,  -- call.routed | call.agent
    call_uuid   TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    -- What a subscriber receives when it claims the event (JSON).
    data        TEXT    NOT NULL
);
CREATE INDEX events_by_time ON events (created_at);

CREATE TABLE deliveries (
    subscription  TEXT    NOT NULL,
    event_id      BIGINT  NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    -- new | claimed | success | max-retries-exceeded
    status        TEXT    NOT NULL,
    -- How often the event was handed out.
    attempts      BIGINT  NOT NULL DEFAULT 0,
    claim         TEXT,
    claimed_until BIGINT,
    updated_at    BIGINT  NOT NULL,
    PRIMARY KEY (subscription, event_id)
);
CREATE INDEX deliveries_to_claim ON deliveries (subscription, status, event_id);
