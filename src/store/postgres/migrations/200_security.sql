-- Security (issue 5): CIS posture, violations, score history, remediation commands, incidents.
-- Fed from security_events (kind 4) by src/security/posture.ts; read by src/security/routes.ts.

-- How far each consumer has read security_events, per agent (batch ids grow per agent).
create table security_consumer_offsets (
  consumer  text not null,
  agent_id  bigint not null references agents(id),
  batch_id  bigint not null,
  primary key (consumer, agent_id)
);

create table cis_scans (
  id          bigint generated always as identity primary key,
  agent_id    bigint not null references agents(id),
  scanned_at  timestamptz not null,
  platform    text,
  os          text not null default '',
  passed      int not null,
  failed      int not null,
  not_applicable int not null,
  errors      int not null
);
create index cis_scans_agent on cis_scans (agent_id, scanned_at desc);

-- Latest verdict of every control on every host.
create table cis_results (
  agent_id    bigint not null references agents(id),
  control_id  text not null,
  status      text not null check (status in ('pass', 'fail', 'notapplicable', 'error')),
  severity    smallint not null,
  category    text not null,
  observed    text not null default '',
  scanned_at  timestamptz not null,
  primary key (agent_id, control_id)
);
create index cis_results_control on cis_results (control_id, status);

-- A failing control on a host, from the first scan that saw it fail until a scan sees it pass.
create table cis_violations (
  id              bigint generated always as identity primary key,
  agent_id        bigint not null references agents(id),
  control_id      text not null,
  severity        smallint not null,
  observed        text not null default '',
  first_seen      timestamptz not null,
  last_seen       timestamptz not null,
  acknowledged_at timestamptz,
  acknowledged_by text,
  ack_note        text,
  resolved_at     timestamptz,
  resolved_by     text
);
create unique index cis_violations_open on cis_violations (agent_id, control_id) where resolved_at is null;
create index cis_violations_agent on cis_violations (agent_id, first_seen desc);

create table security_scores (
  agent_id  bigint not null references agents(id),
  ts        timestamptz not null,
  score     smallint not null check (score between 0 and 100),
  breakdown jsonb not null,
  primary key (agent_id, ts)
);

-- Every signed command the server issued, and what came back.
create table security_commands (
  id            text primary key,
  agent_id      bigint not null references agents(id),
  action        text not null,
  args          jsonb not null,
  requested_by  text not null,
  issued_at     timestamptz not null,
  status        text not null default 'sent' check (status in ('sent', 'ok', 'failed')),
  result        jsonb,
  snapshot      text
);
create index security_commands_agent on security_commands (agent_id, issued_at desc);

-- Auto-remediation switched on per control and host group (an agent tag; '*' = every host).
create table cis_auto_remediation (
  control_id  text not null,
  host_group  text not null,
  enabled     boolean not null,
  set_by      text not null,
  set_at      timestamptz not null default now(),
  primary key (control_id, host_group)
);
