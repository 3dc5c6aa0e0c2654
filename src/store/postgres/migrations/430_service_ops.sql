-- Service operations (src/operations/services.ts): one row per operation asked of one host; a
-- group run shares its `run_id`. The signed command itself is in security_commands (command_id).
create table service_operations (
  id            bigserial primary key,
  run_id        text not null,
  command_id    text,
  agent_id      bigint not null references agents(id),
  unit          text not null,
  op            text not null check (op in ('list', 'status', 'start', 'stop', 'restart', 'reload', 'enable', 'disable')),
  requested_by  text not null,
  requested_at  timestamptz not null default now(),
  finished_at   timestamptz,
  status        text not null default 'sent' check (status in ('sent', 'ok', 'failed')),
  error         text,
  result        jsonb
);
create index service_operations_agent on service_operations (agent_id, requested_at desc);
create index service_operations_run on service_operations (run_id);
