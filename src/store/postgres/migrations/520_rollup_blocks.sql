-- Rollup tiers as compressed blocks (issue #19; docs/architecture.md "Metric rollups"). A row of
-- metric_rollup_1m and metric_rollup_1h (migration 490) held one (agent, series, bucket): about
-- 110 bytes with its index, some 18 bytes per raw sample at 10 s, several times what compressed
-- raw rows take. The new tables hold one (agent, hour) and a group of series per row:
-- `block` is four blocks of src/store/codec/block.ts (min, max, sum, count over the hour's
-- minutes, or over the one hour) written and decoded by src/store/postgres/rollup-blocks.ts.
-- Rows of the old tables stay readable (readers read both) and are deleted when the job
-- recomputes their hour; the rest leave with retention.
create table metric_rollup_1m_blocks (
  agent_id bigint not null,
  hour     timestamptz not null,
  block    bytea not null,
  series   int4[] not null -- the row's series ids, so a read of a few series skips the other rows
) partition by range (hour);
create index metric_rollup_1m_blocks_agent_hour on metric_rollup_1m_blocks (agent_id, hour);
create table metric_rollup_1m_blocks_default partition of metric_rollup_1m_blocks default;

create table metric_rollup_1h_blocks (
  agent_id bigint not null,
  hour     timestamptz not null,
  block    bytea not null,
  series   int4[] not null
) partition by range (hour);
create index metric_rollup_1h_blocks_agent_hour on metric_rollup_1h_blocks (agent_id, hour);
create table metric_rollup_1h_blocks_default partition of metric_rollup_1h_blocks default;
