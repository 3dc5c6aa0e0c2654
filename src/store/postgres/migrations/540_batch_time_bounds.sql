-- The ClickHouse shipper's time bound (src/store/clickhouse/shipper.ts). The shipper finds a
-- batch's log lines by (agent, batch); under hourly leaves (src/store/postgres/partitions.ts)
-- that read without a time bound touches every leaf of every retained day. The ingest writer
-- now records, for each logs batch, the earliest and latest time of its lines, and the shipper
-- reads those lines with `ts between ts_min and ts_max`, which prunes the leaves. Rows written
-- before this migration (and batches of other kinds) have null bounds: read without a bound,
-- as before. Nullable columns without a default: adding them rewrites nothing.
alter table ingest_batches add column ts_min timestamptz, add column ts_max timestamptz;
