-- How many calls each caller made on each day (UTC days since the epoch), kept in step with
-- `calls` by triggers, whoever writes or deletes a call: `history` counts a frequent caller's
-- calls from at most one row per day, so a caller's 1,000th call costs what the 50th does.
CREATE TABLE caller_days (
    caller_e164 TEXT   NOT NULL,
    day         BIGINT NOT NULL,
    calls       BIGINT NOT NULL,
    PRIMARY KEY (caller_e164, day)
) WITHOUT ROWID;

-- The calls logged before this migration.
INSERT INTO caller_days (caller_e164, day, calls)
    SELECT caller_e164, received_at / 86400000, COUNT(*) FROM calls
    WHERE caller_e164 <> '' AND received_at >= 0
    GROUP BY caller_e164, received_at / 86400000;

-- Withheld and invalid numbers (no E.164 form) have no history.
CREATE TRIGGER caller_days_insert AFTER INSERT ON calls
    WHEN new.caller_e164 <> '' AND new.received_at >= 0
BEGIN
    INSERT INTO caller_days (caller_e164, day, calls)
        VALUES (new.caller_e164, new.received_at / 86400000, 1)
        ON CONFLICT (caller_e164, day) DO UPDATE SET calls = calls + 1;
END;

CREATE TRIGGER caller_days_delete AFTER DELETE ON calls
    WHEN old.caller_e164 <> '' AND old.received_at >= 0
BEGIN
    UPDATE caller_days SET calls = calls - 1
        WHERE caller_e164 = old.caller_e164 AND day = old.received_at / 86400000;
    DELETE FROM caller_days
        WHERE caller_e164 = old.caller_e164 AND day = old.received_at / 86400000 AND calls <= 0;
END;

-- belroute never changes a call's caller or time; a hand-made change is counted all the same.
CREATE TRIGGER caller_days_update_old AFTER UPDATE OF caller_e164, received_at ON calls
    WHEN old.caller_e164 <> '' AND old.received_at >= 0
BEGIN
    UPDATE caller_days SET calls = calls - 1
        WHERE caller_e164 = old.caller_e164 AND day = old.received_at / 86400000;
    DELETE FROM caller_days
        WHERE caller_e164 = old.caller_e164 AND day = old.received_at / 86400000 AND calls <= 0;
END;

CREATE TRIGGER caller_days_update_new AFTER UPDATE OF caller_e164, received_at ON calls
    WHEN new.caller_e164 <> '' AND new.received_at >= 0
BEGIN
    INSERT INTO caller_days (caller_e164, day, calls)
        VALUES (new.caller_e164, new.received_at / 86400000, 1)
        ON CONFLICT (caller_e164, day) DO UPDATE SET calls = calls + 1;
END;
