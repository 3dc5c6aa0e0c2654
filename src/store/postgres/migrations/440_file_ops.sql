-- File operations (issue #14): the path policy of each role and the record of every operation.
--
-- role_file_policies: which paths a role's file permissions reach. A role without a row reaches
-- no path, except the built-in admin role, which reaches "/" (src/operations/files.ts applies the
-- default, since built-in roles are created after migrations). The agent also refuses its own
-- always-denied list whatever a role says.
create table role_file_policies (
  role_id       bigint primary key references console_roles(id) on delete cascade,
  allowed_roots text[] not null default '{}',
  denied        text[] not null default '{}',
  updated_by    text not null default '',
  updated_at    timestamptz not null default now()
);

-- One row per file command that reached an agent (reads and changes): what was asked, the
-- SHA-256 before and after, the snapshot a change left, and the outcome.
create table file_operations (
  id            bigint generated always as identity primary key,
  agent_id      bigint not null references agents(id),
  command_id    text not null,
  ts            timestamptz not null default now(),
  actor         text not null,
  op            text not null,
  path          text not null,
  to_path       text,
  before_sha256 text,
  sent_sha256   text,
  after_sha256  text,
  snapshot      text,
  success       boolean not null,
  error         text
);
create index file_operations_agent on file_operations (agent_id, ts desc);
create index file_operations_snapshot on file_operations (agent_id, snapshot) where snapshot is not null;
