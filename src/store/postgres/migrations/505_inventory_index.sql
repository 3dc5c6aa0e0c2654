-- Fleet inventory search (src/inventory/queries.ts): the packages, listening ports, users and
-- pending-update summary of each host's current inventory, as rows. inventory_current keeps one
-- JSON document per host (~2,000 packages, ~100 kB); a question over the fleet ("which hosts
-- have openssl") would otherwise read and decompress every document. These tables are kept in
-- step with inventory_current by a trigger, in the writing transaction, so they always say what
-- the stored document says. The writer upserts a document only when its hash changed, so the
-- trigger runs once per changed inventory, not per report. docs/architecture.md has the numbers.

create table inventory_packages (
  agent_id bigint not null references agents(id) on delete cascade,
  name     text collate "C" not null,
  version  text not null,
  arch     text not null
);
create index inventory_packages_name on inventory_packages (name, agent_id);
create index inventory_packages_agent on inventory_packages (agent_id, name);

create table inventory_ports (
  agent_id bigint not null references agents(id) on delete cascade,
  proto    text not null,
  address  text not null,
  port     integer not null
);
create index inventory_ports_port on inventory_ports (port, agent_id);

create table inventory_users (
  agent_id bigint not null references agents(id) on delete cascade,
  name     text collate "C" not null,
  uid      bigint,
  shell    text not null
);
create index inventory_users_name on inventory_users (name, agent_id);

-- One row per host: what the search shows beside a match, and pending updates.
create table inventory_hosts (
  agent_id          bigint primary key references agents(id) on delete cascade,
  os_id             text not null,
  os_name           text not null,
  package_count     integer not null,
  updates_status    text,
  updates_source    text,
  security_updates  integer,
  other_updates     integer,
  security_packages text[] not null default '{}'
);
create index inventory_hosts_security on inventory_hosts (agent_id) where security_updates > 0;

-- Rebuilds one host's rows from its document. Defensive about shape: the document is what an
-- agent sent; elements that are not objects, or fields of the wrong type, are skipped, never an
-- error (an error here would refuse the agent's whole batch).
create function inventory_index_host(p_agent bigint, d jsonb) returns void language plpgsql as $$
declare
  u jsonb := case when jsonb_typeof(d->'updates') = 'object' then d->'updates' end;
begin
  -- packages by difference: an inventory whose package list did not change (only its pending
  -- updates, say) writes no package row; an upgrade writes the changed packages only
  with n as (
    select distinct left(e->>'name', 256) as name, left(coalesce(e->>'version', ''), 256) as version, left(coalesce(e->>'arch', ''), 64) as arch
    from jsonb_array_elements(case when jsonb_typeof(d->'packages') = 'array' then d->'packages' else '[]'::jsonb end) e
    where jsonb_typeof(e) = 'object' and jsonb_typeof(e->'name') = 'string'
  ), gone as (
    delete from inventory_packages p where p.agent_id = p_agent
      and not exists (select 1 from n where n.name = p.name and n.version = p.version and n.arch = p.arch)
  )
  insert into inventory_packages (agent_id, name, version, arch)
    select p_agent, n.name, n.version, n.arch from n
    where not exists (select 1 from inventory_packages p where p.agent_id = p_agent and p.name = n.name and p.version = n.version and p.arch = n.arch);
  delete from inventory_ports where agent_id = p_agent;
  delete from inventory_users where agent_id = p_agent;
  if jsonb_typeof(d->'ports') = 'array' then
    insert into inventory_ports (agent_id, proto, address, port)
      select p_agent, left(coalesce(e->>'proto', ''), 16), left(coalesce(e->>'address', ''), 64), (e->>'port')::numeric::integer
      from jsonb_array_elements(d->'ports') e
      where jsonb_typeof(e) = 'object' and jsonb_typeof(e->'port') = 'number' and (e->>'port')::numeric between 0 and 65535;
  end if;
  if jsonb_typeof(d->'users') = 'array' then
    insert into inventory_users (agent_id, name, uid, shell)
      select p_agent, left(e->>'name', 256),
        case when jsonb_typeof(e->'uid') = 'number' and (e->>'uid')::numeric between 0 and 4294967295 then (e->>'uid')::numeric::bigint end,
        left(coalesce(e->>'shell', ''), 256)
      from jsonb_array_elements(d->'users') e
      where jsonb_typeof(e) = 'object' and jsonb_typeof(e->'name') = 'string';
  end if;
  insert into inventory_hosts (agent_id, os_id, os_name, package_count, updates_status, updates_source, security_updates, other_updates, security_packages)
  values (
    p_agent,
    left(coalesce(d->'os'->>'id', ''), 64),
    left(coalesce(nullif(d->'os'->>'prettyName', ''), trim(concat_ws(' ', d->'os'->>'name', d->'os'->>'version')), ''), 200),
    case when jsonb_typeof(d->'packages') = 'array' then jsonb_array_length(d->'packages') else 0 end,
    left(u->>'status', 16),
    left(u->>'source', 16),
    case when jsonb_typeof(u->'security') = 'number' and (u->>'security')::numeric between 0 and 1000000 then (u->>'security')::numeric::integer end,
    case when jsonb_typeof(u->'other') = 'number' and (u->>'other')::numeric between 0 and 1000000 then (u->>'other')::numeric::integer end,
    coalesce((select array_agg(left(x, 256)) from jsonb_array_elements_text(case when jsonb_typeof(u->'securityPackages') = 'array' then u->'securityPackages' else '[]'::jsonb end) x), '{}')
  )
  on conflict (agent_id) do update set os_id = excluded.os_id, os_name = excluded.os_name, package_count = excluded.package_count,
    updates_status = excluded.updates_status, updates_source = excluded.updates_source, security_updates = excluded.security_updates,
    other_updates = excluded.other_updates, security_packages = excluded.security_packages;
exception when others then
  -- keep the agent's batch: the search keeps this host's previous rows until its next changed inventory
  raise warning 'inventory index of agent % not rebuilt: %', p_agent, sqlerrm;
end $$;

create function inventory_index_trigger() returns trigger language plpgsql as $$
begin
  perform inventory_index_host(new.agent_id, new.data);
  return null;
end $$;

create trigger inventory_current_index after insert or update of data on inventory_current
  for each row execute function inventory_index_trigger();

select inventory_index_host(agent_id, data) from inventory_current;
