-- The 10-minute rollup tier (issue #19; docs/architecture.md "Metric rollups"). A 7-day chart
-- of 1,000 points asks for 10-minute buckets, which the 1-minute tier answered by decoding 60
-- aggregates per series and hour, from a row per (agent, hour). A row here holds an (agent, day)
-- and a group of series: `block` is the four blocks of src/store/postgres/rollup-blocks.ts (min,
-- max, sum, count over the day's 10-minute buckets), `hours` the bit set of the day's hours it was
-- computed from (bit i: hour i of the day, UTC). The rollup job (rollups.ts) merges each hour it
-- recomputes into its day's rows, replacing that hour's buckets, and sets its bit.
--
-- Nothing is backfilled: hours rolled up before this migration have no bit, and readers
-- (rollup-read.ts) read them from the 1-minute tier, so answers stay exact; they leave with
-- retention, or gain their bit when late data makes the job recompute them.
create table metric_rollup_10m_blocks (
  agent_id bigint not null,
  day      timestamptz not null,
  hours    int4 not null,
  block    bytea not null,
  series   int4[] not null
) partition by range (day);
create index metric_rollup_10m_blocks_agent_day on metric_rollup_10m_blocks (agent_id, day);
create table metric_rollup_10m_blocks_default partition of metric_rollup_10m_blocks default;
