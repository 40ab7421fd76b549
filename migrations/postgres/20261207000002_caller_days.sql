-- How many calls each caller made on each day (UTC days since the epoch), kept in step with
-- `calls` by triggers, whoever writes or deletes a call (several instances on one database
-- included: the upserts are atomic): `history` counts a frequent caller's calls from at most
-- one row per day, so a caller's 1,000th call costs what the 50th does.
CREATE TABLE caller_days (
    caller_e164 TEXT   NOT NULL,
    day         BIGINT NOT NULL,
    calls       BIGINT NOT NULL,
    PRIMARY KEY (caller_e164, day)
);

-- The calls logged before this migration.
INSERT INTO caller_days (caller_e164, day, calls)
    SELECT caller_e164, received_at / 86400000, COUNT(*) FROM calls
    WHERE caller_e164 <> '' AND received_at >= 0
    GROUP BY caller_e164, received_at / 86400000;

-- Once per statement (a batch of calls is one INSERT), in the key's order, so that two
-- writers' batches take the rows' locks in the same order. Withheld and invalid numbers (no
-- E.164 form) have no history.
CREATE FUNCTION caller_days_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO caller_days (caller_e164, day, calls)
        SELECT caller_e164, received_at / 86400000, COUNT(*) FROM added
        WHERE caller_e164 <> '' AND received_at >= 0
        GROUP BY caller_e164, received_at / 86400000
        ORDER BY 1, 2
        ON CONFLICT (caller_e164, day) DO UPDATE SET calls = caller_days.calls + excluded.calls;
    RETURN NULL;
END $$;

CREATE FUNCTION caller_days_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE caller_days d SET calls = d.calls - r.calls
        FROM (SELECT caller_e164, received_at / 86400000 AS day, COUNT(*) AS calls FROM removed
              WHERE caller_e164 <> '' AND received_at >= 0
              GROUP BY caller_e164, received_at / 86400000) r
        WHERE d.caller_e164 = r.caller_e164 AND d.day = r.day;
    DELETE FROM caller_days d
        USING (SELECT DISTINCT caller_e164, received_at / 86400000 AS day FROM removed) r
        WHERE d.caller_e164 = r.caller_e164 AND d.day = r.day AND d.calls <= 0;
    RETURN NULL;
END $$;

CREATE TRIGGER caller_days_insert AFTER INSERT ON calls
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION caller_days_add();
CREATE TRIGGER caller_days_delete AFTER DELETE ON calls
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION caller_days_remove();

-- belroute never changes a call's caller or time; a hand-made change is counted all the same.
CREATE FUNCTION caller_days_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.caller_e164 <> '' AND OLD.received_at >= 0 THEN
        UPDATE caller_days SET calls = calls - 1
            WHERE caller_e164 = OLD.caller_e164 AND day = OLD.received_at / 86400000;
        DELETE FROM caller_days
            WHERE caller_e164 = OLD.caller_e164 AND day = OLD.received_at / 86400000 AND calls <= 0;
    END IF;
    IF NEW.caller_e164 <> '' AND NEW.received_at >= 0 THEN
        INSERT INTO caller_days (caller_e164, day, calls)
            VALUES (NEW.caller_e164, NEW.received_at / 86400000, 1)
            ON CONFLICT (caller_e164, day) DO UPDATE SET calls = caller_days.calls + 1;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER caller_days_update AFTER UPDATE OF caller_e164, received_at ON calls
    FOR EACH ROW EXECUTE FUNCTION caller_days_move();
