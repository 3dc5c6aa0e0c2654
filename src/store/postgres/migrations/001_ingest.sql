-- Agents, enrollment and the telemetry tables. Time-series tables are range-partitioned by day;
-- src/store/postgres/partitions.ts creates partitions ahead and drops those past retention.

create table agents (
  id            bigint generated always as identity primary key,
  hostname      text not null,
  public_key    bytea not null unique check (length(public_key) = 32),
  os            text not null default '',
  arch          text not null default '',
  agent_version text not null default '',
  tags          text[] not null default '{}',
  enrolled_at   timestamptz not null default now(),
  revoked_at    timestamptz,
  last_seen     timestamptz,
  -- highest sequence number committed; frames at or below last_seq - window are replays
  last_seq      bigint not null default 0,
  transport     text,
  status        jsonb not null default '{}'
);

create table activation_tokens (
  id            bigint generated always as identity primary key,
  token_hash    bytea not null unique,
  label         text not null default '',
  created_by    text not null,
  created_at    timestamptz not null default now(),
  expires_at    timestamptz not null,
  used_at       timestamptz,
  used_by_agent bigint references agents(id),
  revoked_at    timestamptz
);

-- Series dictionary: one id per (agent, metric name).
create table metric_series (
  id       integer generated always as identity primary key,
  agent_id bigint not null references agents(id),
  name     text not null,
  unique (agent_id, name)
);

-- One row per (agent, up to 10 series, the timestamps of one frame): values are series-major,
-- vals[s * cardinality(ts_off) + t]. NaN marks a missing sample. See docs/architecture.md.
create table metric_blocks (
  agent_id bigint not null,
  batch_id bigint not null,
  t0       timestamptz not null,
  t1       timestamptz not null,
  ts_off   int4[] not null,
  series   int4[] not null,
  vals     float8[] not null
) partition by range (t0);
create index metric_blocks_agent_t0 on metric_blocks (agent_id, t0);
create table metric_blocks_default partition of metric_blocks default;

-- Latest value of every series of every agent, for the fleet overview. Refreshed from memory
-- every few seconds; a derived table, rebuilt by the next frames if lost.
create table metric_latest (
  agent_id bigint primary key references agents(id),
  ts       timestamptz not null,
  names    text[] not null,
  vals     float8[] not null
);

create table logs (
  agent_id bigint not null,
  batch_id bigint not null,
  ts       timestamptz not null,
  severity smallint not null,
  source   text not null,
  message  text not null
) partition by range (ts);
create index logs_agent_ts on logs (agent_id, ts);
create table logs_default partition of logs default;

create table security_events (
  agent_id bigint not null,
  batch_id bigint not null,
  ts       timestamptz not null,
  type     text not null,
  severity smallint not null,
  path     text,
  data     jsonb
) partition by range (ts);
create index security_events_agent_ts on security_events (agent_id, ts);
create table security_events_default partition of security_events default;

create table inventory_current (
  agent_id     bigint primary key references agents(id),
  collected_at timestamptz not null,
  hash         bytea not null,
  data         jsonb not null
);

create table inventory_history (
  agent_id     bigint not null references agents(id),
  collected_at timestamptz not null,
  hash         bytea not null,
  data         jsonb not null
);
create index inventory_history_agent on inventory_history (agent_id, collected_at);

-- Every committed batch, so a resend is acknowledged again but stored once. Rows of the
-- time-series tables carry their batch_id, so a consumer can follow what was committed.
create table ingest_batches (
  agent_id     bigint not null,
  batch_id     bigint not null,
  kind         smallint not null,
  committed_at timestamptz not null default now(),
  primary key (agent_id, batch_id)
);
create index ingest_batches_committed on ingest_batches (committed_at);
