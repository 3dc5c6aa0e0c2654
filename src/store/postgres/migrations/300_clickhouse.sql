-- ClickHouse tier (src/store/clickhouse/): the shipper follows committed batches in the order of
-- their transaction ids. Each ingest_batches row records the id of the transaction that wrote it
-- (the default fills it; the writer is unchanged). A batch is shipped only once its xid is below
-- the xmin of a current snapshot: every transaction with a smaller xid has ended, so the set of
-- rows below that bound can no longer grow, and a cursor over (xid, agent_id, batch_id) never
-- skips a batch whose transaction committed late (docs/operations.md, "ClickHouse tier").
alter table ingest_batches add column xid xid8 not null default pg_current_xact_id();
create index ingest_batches_xid on ingest_batches (xid, agent_id, batch_id);

-- One row: how far the shipper has come. Advanced only after ClickHouse confirmed the insert.
create table clickhouse_cursor (
  id         smallint primary key default 1 check (id = 1),
  xid        xid8 not null default '0',
  agent_id   bigint not null default 0,
  batch_id   bigint not null default 0,
  shipped_batches bigint not null default 0,
  updated_at timestamptz not null default now()
);
insert into clickhouse_cursor default values;
