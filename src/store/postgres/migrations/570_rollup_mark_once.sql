-- Rollup marks: one per (agent, hour) while it waits for the job, instead of one per statement
-- (issue #19: ingest rate). Until now every statement that stored blocks appended a mark for each
-- (agent, hour) it touched: a fleet sending every 10 s left 360 marks per host-hour, each a heap
-- row and two index entries, about a fifth of PostgreSQL's CPU on the ingest path
-- (docs/architecture.md, "December 7, marks once").
--
-- A statement now adds a mark only when it cannot take a KEY SHARE lock on an existing mark of
-- the same (agent, hour). Exactly once still holds, because the lock and the job's DELETE
-- conflict:
--  * the writer locked a mark first: the job's DELETE of it waits until the writer's statement
--    has committed, and the job's recompute, a later statement of its transaction, sees the
--    writer's blocks;
--  * the job deleted the mark first (not yet committed): SKIP LOCKED passes over it, and the
--    writer inserts a mark of its own, which the job's DELETE did not see and leaves for its next
--    step;
--  * the job's deletion committed: the locked read finds the row gone, and the writer inserts.
-- Writers never wait: not on each other (KEY SHARE locks do not conflict with one another), nor
-- on the job (SKIP LOCKED passes over the marks it is deleting). Readers see a mark for every hour
-- whose committed blocks the job has not rolled up, as before. Compacted rows (batch_id -1) still
-- mark nothing (migration 515).
create or replace function metric_rollup_mark() returns trigger language plpgsql as $$
begin
  insert into metric_rollup_dirty (agent_id, hour)
  select p.agent_id, p.hour
  from (select distinct n.agent_id, h as hour
        from new_blocks n
        cross join lateral generate_series(date_bin('1 hour', n.t0, timestamptz 'epoch'),
                                           date_bin('1 hour', n.t1, timestamptz 'epoch'), interval '1 hour') h
        where n.batch_id <> -1) p
  where not exists (select 1 from metric_rollup_dirty d
                    where d.agent_id = p.agent_id and d.hour = p.hour
                    limit 1 for key share skip locked);
  return null;
end $$;
