-- A `call.routed` event no longer copies the call's fields: they are in calls.call_data already,
-- and are joined in (as `data.call`) when the event is claimed. call_id is that call's row;
-- NULL for events written before this migration (their data holds the call itself) and for
-- other kinds of event.
ALTER TABLE events ADD COLUMN call_id BIGINT;
