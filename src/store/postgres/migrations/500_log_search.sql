-- Issue #17, fleet-wide log search (src/logs/). Measured by bench/logs.bench.ts; the numbers and
-- the choice are in docs/architecture.md ("Log search").
--
-- 1. A row id for keyset paging on (ts, id): newest first, stable across pages. The column is
--    added without a rewrite (rows stored before this migration keep id NULL and page by ts
--    alone); new rows take the sequence's next value. Not cached per session: ids then follow
--    the order lines are written, which the live tail relies on (new lines: id > the last seen).
create sequence logs_id_seq as bigint;
alter table logs add column id bigint;
alter table logs alter column id set default nextval('logs_id_seq');
alter sequence logs_id_seq owned by logs.id;

-- 2. Newest-first order over the whole fleet: a common word matches on most lines, so the
--    planner walks this index backwards and stops at the page size instead of sorting.
create index logs_ts_id on logs (ts, id);
-- The live tail asks for "id > the last line it showed": a BRIN summary (a few pages per
-- partition, next to no ingest cost, as ids grow with the physical order) finds those rows.
create index logs_id_brin on logs using brin (id);

-- 3. Words and "phrases" match anywhere in a message (ILIKE '%…%', as the host card always did):
--    a trigram GIN index serves that for any substring of 3 and more characters. Full-text
--    search (tsvector) was not chosen: its stemming and tokenising do not fit log text (paths,
--    addresses, "sshd[123]:") and it cannot answer substrings. The index is NOT on the parent:
--    maintained row by row it cut COPY ingest to a fifth (bench:logs). Partition upkeep builds
--    it (CONCURRENTLY) on each day's partition once that day is over and ingest has moved on
--    (indexSealedLogPartitions, src/store/postgres/partitions.ts); today's partition is searched
--    through logs_ts_id. pg_trgm is a contrib extension (in embedded-postgres and every packaged
--    PostgreSQL); where it is missing, search still works, by scanning, and a notice says so.
do $$
begin
  if exists (select 1 from pg_available_extensions where name = 'pg_trgm') then
    create extension if not exists pg_trgm;
  else
    raise notice 'pg_trgm is not available: log search scans without a trigram index';
  end if;
end $$;
