-- Compaction and the ClickHouse tier (docs/operations.md "Metric rollups", "ClickHouse tier").
-- The shipper finds raw rows by (agent, batch); compaction (migration 515) replaces a closed hour's
-- rows by rows with batch_id -1, so rows compacted while the tier was off would never reach
-- ClickHouse once it is turned on. Each compaction appends the (agent, hour) it rewrote here, in
-- its own transaction; the shipper ships the compacted rows of every entry after its cursor
-- (ClickHouse keys make a re-shipped row invisible). Entries older than raw retention are deleted.
create table metric_compactions (
  id       bigint generated always as identity primary key,
  agent_id bigint not null,
  hour     timestamptz not null
);
alter table clickhouse_cursor add column compaction_id bigint not null default 0;
create index metric_compactions_hour on metric_compactions (hour);
