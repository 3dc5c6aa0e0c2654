-- Operations an AI client asked for over MCP (src/mcp/approvals.ts): each waits here until a
-- person approves or rejects it in the console (/ai/approvals). `args` are the tool's arguments
-- with file contents replaced by their size and SHA-256; the bytes of a queued write are kept in
-- `payload` only while the request is pending, and cleared when it is decided.
create table ai_approvals (
  id              bigserial primary key,
  tool            text not null,
  args            jsonb not null,
  payload         bytea,
  agent_id        bigint not null references agents(id),
  permission      text not null,
  reason          text not null,
  token_id        bigint not null,
  user_id         bigint not null,
  client_name     text not null default '',
  client_version  text not null default '',
  status          text not null default 'pending' check (status in ('pending', 'approved', 'rejected')),
  requested_at    timestamptz not null default now(),
  decided_by      text,
  decided_at      timestamptz,
  outcome         text,
  result          jsonb
);
create index ai_approvals_pending on ai_approvals (status, requested_at);
