-- Metric blocks in a compressed encoding (issue #19; docs/architecture.md "Metric storage
-- layout"). New rows hold a frame's timestamps, series ids and values in `block`
-- (src/store/codec/block.ts: delta-of-delta timestamps; per series constant, integer deltas at a
-- decimal scale, or XOR of bit patterns), written by the server's writer and decoded by the
-- server's readers (src/store/postgres/metric-blocks.ts). Rows stored before keep ts_off, series
-- and vals and a null block, and stay readable: every reader reads both kinds of row.
-- Partitions, retention, the (agent_id, t0) index and the rollup marks' trigger (t0, t1) are
-- unchanged.
alter table metric_blocks add column block bytea;
alter table metric_blocks alter column ts_off drop not null;
alter table metric_blocks alter column series drop not null;
alter table metric_blocks alter column vals drop not null;
alter table metric_blocks add constraint metric_blocks_one_layout
  check ((block is not null and ts_off is null and series is null and vals is null)
      or (block is null and ts_off is not null and series is not null and vals is not null));
