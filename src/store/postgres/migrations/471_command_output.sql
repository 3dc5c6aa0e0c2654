-- Output of a command while it runs (docs/protocol.md 8.2, `command-output`): the agent sends
-- numbered chunks of lines before the result; the console reads them back while it waits
-- (src/cluster/command-output.ts). Bounded per command (seq below 500, 200 lines per chunk).
create table command_output (
  command_id   text not null references security_commands(id) on delete cascade,
  seq          integer not null check (seq >= 0 and seq < 500),
  received_at  timestamptz not null default now(),
  lines        jsonb not null,
  primary key (command_id, seq)
);

-- A group run records every host's row before it starts, so the console's per-host table fills
-- in as results arrive: 'queued' until its command is sent.
alter table service_operations drop constraint service_operations_status_check;
alter table service_operations add constraint service_operations_status_check check (status in ('queued', 'sent', 'ok', 'failed'));
