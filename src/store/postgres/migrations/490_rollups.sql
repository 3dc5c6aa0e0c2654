-- Metric rollups (src/store/postgres/rollups.ts): 1-minute and 1-hour min/max/sum/count per
-- (agent, series, bucket), partitioned by time like metric_blocks, each tier with its own
-- retention (partitions.ts). Long console ranges read these instead of raw metric_blocks.
--
-- Exactly once. Every insert into metric_blocks marks the (agent, hour) pairs it touches as
-- dirty, in the inserting transaction (statement trigger below), so a mark exists iff rows it
-- covers were committed. The rollup job (one node at a time, advisory lock) deletes marks and
-- recomputes the covered hours wholly from raw rows in one transaction: a crash rolls back both,
-- and a recompute replaces rather than adds, so nothing is counted twice. Late data (an agent's
-- spool resent hours later) marks its hour again and the hour is recomputed. Readers treat a
-- dirty hour as not rolled up and read it raw, so answers never depend on the job's lag.
create table metric_rollup_1m (
  agent_id  bigint not null,
  series_id integer not null,
  bucket    timestamptz not null,
  min       float8 not null,
  max       float8 not null,
  sum       float8 not null,
  count     integer not null,
  primary key (agent_id, series_id, bucket)
) partition by range (bucket);
create table metric_rollup_1m_default partition of metric_rollup_1m default;

create table metric_rollup_1h (
  agent_id  bigint not null,
  series_id integer not null,
  bucket    timestamptz not null,
  min       float8 not null,
  max       float8 not null,
  sum       float8 not null,
  count     integer not null,
  primary key (agent_id, series_id, bucket)
) partition by range (bucket);
create table metric_rollup_1h_default partition of metric_rollup_1h default;

-- Append-only marks: no unique key, so writers never wait on each other or on the job.
create table metric_rollup_dirty (
  agent_id bigint not null,
  hour     timestamptz not null
);
create index metric_rollup_dirty_hour on metric_rollup_dirty (hour, agent_id);
create index metric_rollup_dirty_agent on metric_rollup_dirty (agent_id, hour);

create function metric_rollup_mark() returns trigger language plpgsql as $$
begin
  insert into metric_rollup_dirty (agent_id, hour)
  select distinct n.agent_id, h
  from new_blocks n
  cross join lateral generate_series(date_bin('1 hour', n.t0, timestamptz 'epoch'), date_bin('1 hour', n.t1, timestamptz 'epoch'), interval '1 hour') h;
  return null;
end $$;

create trigger metric_blocks_rollup_mark after insert on metric_blocks
  referencing new table as new_blocks for each statement execute function metric_rollup_mark();

-- Existing data: every stored hour starts dirty, so the job backfills the rollups.
insert into metric_rollup_dirty (agent_id, hour)
select distinct b.agent_id, h
from metric_blocks b
cross join lateral generate_series(date_bin('1 hour', b.t0, timestamptz 'epoch'), date_bin('1 hour', b.t1, timestamptz 'epoch'), interval '1 hour') h;
