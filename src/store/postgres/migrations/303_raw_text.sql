-- Agent data that PostgreSQL's text or jsonb cannot hold exactly (U+0000, unpaired surrogates,
-- NaN and infinity in maps) is stored in two forms: a display form in the usual column and the
-- exact original here (UTF-8 for a log message, msgpack for a map). NULL, the common case, when
-- the usual column holds the value exactly. See src/store/postgres/pg-text.ts and
-- docs/protocol.md ("Text PostgreSQL cannot hold").
alter table logs add column message_raw bytea;
alter table security_events add column data_raw bytea;
alter table inventory_current add column data_raw bytea;
alter table inventory_history add column data_raw bytea;
