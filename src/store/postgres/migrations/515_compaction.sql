-- Compaction (src/store/postgres/compaction.ts): once an hour is rolled up, the rollup job replaces
-- its raw rows by rows holding the whole hour per series, with batch_id -1. Those rows carry data
-- whose hour was just recomputed, so they must not mark it dirty again: the mark trigger skips them.
create or replace function metric_rollup_mark() returns trigger language plpgsql as $$
begin
  insert into metric_rollup_dirty (agent_id, hour)
  select distinct n.agent_id, h
  from new_blocks n
  cross join lateral generate_series(date_bin('1 hour', n.t0, timestamptz 'epoch'), date_bin('1 hour', n.t1, timestamptz 'epoch'), interval '1 hour') h
  where n.batch_id <> -1;
  return null;
end $$;

-- Rows stored before migration 495 (float8[] columns, no block) are converted by compaction too:
-- mark their hours, and the job rolls them up again (the same answer) and compacts them.
insert into metric_rollup_dirty (agent_id, hour)
select distinct b.agent_id, h
from metric_blocks b
cross join lateral generate_series(date_bin('1 hour', b.t0, timestamptz 'epoch'), date_bin('1 hour', b.t1, timestamptz 'epoch'), interval '1 hour') h
where b.block is null;

-- A compacted row holds a few of an agent's series; `series` lists them (int4[], as rows before
-- migration 495 do), so a read of a few series skips the rows of the others. Rows written by
-- ingest leave it null (a frame's row holds all or most of its series).
alter table metric_blocks drop constraint metric_blocks_one_layout;
alter table metric_blocks add constraint metric_blocks_one_layout
  check ((block is not null and ts_off is null and vals is null)
      or (block is null and ts_off is not null and series is not null and vals is not null));
