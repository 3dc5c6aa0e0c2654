-- The latest values without a copy of the names per agent (issue #19: bytes per sample).
-- metric_latest held each agent's ~100 names as a text[] beside its values: about 950 bytes
-- compressed, rewritten with the row every few seconds, and with fillfactor 50 about 4 kB a host
-- on disk, 0.3 bytes per sample of the bench's realistic workload. Agents report the same sets
-- of names, so a set is stored once in metric_name_sets, and a row refers to it.
--
-- metric_latest_rows is the table; metric_latest stays a view with the same columns for readers.
-- An insert into the view writes the agent's row (replacing it if there is one), an update writes
-- the new row, a delete removes it. The fleet page's cpu, mem and disk (migration 545) are plain
-- columns now, written with the row: by the ingest flush (agent-state.ts) and by the view's trigger.
create table metric_name_sets (
  id    integer generated always as identity primary key,
  hash  bytea not null unique, -- sha256 of the array's text form, which quotes every element
  names text[] not null
);

create function metric_name_set(p_names text[]) returns integer language plpgsql as $$
declare
  h bytea := sha256(convert_to(p_names::text, 'UTF8'));
  sid integer;
begin
  if p_names is null then
    raise exception using errcode = 'not_null_violation', message = 'metric_latest: names must not be null';
  end if;
  select id into sid from metric_name_sets where hash = h;
  if sid is null then
    insert into metric_name_sets (hash, names) values (h, p_names) on conflict (hash) do nothing returning id into sid;
    if sid is null then
      select id into sid from metric_name_sets where hash = h;
    end if;
  end if;
  return sid;
end $$;

alter table metric_latest rename to metric_latest_rows;
alter table metric_latest_rows add column names_set integer references metric_name_sets(id);
update metric_latest_rows set names_set = metric_name_set(names);
alter table metric_latest_rows alter column names_set set not null;
alter table metric_latest_rows drop column cpu, drop column mem, drop column disk;
alter table metric_latest_rows add column cpu float8, add column mem float8, add column disk float8;
update metric_latest_rows set
  cpu = vals[array_position(names, 'cpu.usage_pct')],
  mem = vals[array_position(names, 'mem.used_pct')],
  disk = vals[array_position(names, 'disk.used_pct{mount="/"}')];
alter table metric_latest_rows drop column names;

create view metric_latest as
  select l.agent_id, l.ts, s.names, l.vals, l.cpu, l.mem, l.disk
  from metric_latest_rows l left join metric_name_sets s on s.id = l.names_set;

-- the fleet names are queries-console.ts FLEET_METRICS (a test checks that they agree)
create function metric_latest_write() returns trigger language plpgsql as $$
begin
  if tg_op = 'DELETE' or (tg_op = 'UPDATE' and new.agent_id is distinct from old.agent_id) then
    delete from metric_latest_rows where agent_id = old.agent_id;
    if tg_op = 'DELETE' then
      return old;
    end if;
  end if;
  insert into metric_latest_rows (agent_id, ts, names_set, vals, cpu, mem, disk)
  values (new.agent_id, new.ts, metric_name_set(new.names), new.vals,
          new.vals[array_position(new.names, 'cpu.usage_pct')],
          new.vals[array_position(new.names, 'mem.used_pct')],
          new.vals[array_position(new.names, 'disk.used_pct{mount="/"}')])
  on conflict (agent_id) do update set ts = excluded.ts, names_set = excluded.names_set, vals = excluded.vals,
    cpu = excluded.cpu, mem = excluded.mem, disk = excluded.disk;
  return new;
end $$;
create trigger metric_latest_write instead of insert or update or delete on metric_latest
  for each row execute function metric_latest_write();
