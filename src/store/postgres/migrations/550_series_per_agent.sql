-- The series dictionary as one row per agent (issue #19: bytes per sample). metric_series_ids
-- (migration 525) held a row per series: a 24-byte tuple header, three columns and two index
-- entries, about 108 bytes a series, which at the bench's 60 to 130 points a series was 0.8 to 1.8
-- bytes per sample, as much as the compressed samples themselves. Now metric_agent_series holds,
-- per agent, the name ids and the series ids of its series as two arrays in the order they were
-- registered (about 9 bytes a series). Series ids are kept, so stored blocks and rollups are
-- unchanged, and new ids come from metric_series_id_seq, after every id handed out before.
-- `metric_series` stays a view with the same columns; metric_series_register() is the one way
-- in, for the ingest writer (series.ts) and for inserts into the view.
create table metric_agent_series (
  agent_id bigint primary key references agents(id),
  name_ids int4[] not null,
  ids      int4[] not null,
  check (cardinality(name_ids) = cardinality(ids))
);
insert into metric_agent_series (agent_id, name_ids, ids)
select agent_id, array_agg(name_id order by id), array_agg(id order by id) from metric_series_ids group by agent_id;

create sequence metric_series_id_seq as integer;
do $$
declare last bigint;
begin
  -- the identity may be ahead of max(id) (ids of rolled-back registrations): continue after both
  execute format('select case when is_called then last_value else last_value - 1 end from %s',
                 pg_get_serial_sequence('metric_series_ids', 'id')) into last;
  perform setval('metric_series_id_seq', greatest(last, coalesce((select max(id) from metric_series_ids), 0)) + 1, false);
end $$;

drop view metric_series;
drop function metric_series_insert();
drop table metric_series_ids;

create view metric_series as
  select u.id, s.agent_id, n.name
  from metric_agent_series s
  cross join lateral unnest(s.ids, s.name_ids) as u(id, name_id)
  join metric_names n on n.id = u.name_id;

-- Registers (agent, name) pairs and returns the id of each, new or not. New series of an agent
-- get ids in the order the pairs list them (a frame's order, which the block codec stores in a
-- few bytes when ids count up by one). Agents' rows are locked in agent order, so concurrent
-- registrations wait for each other instead of deadlocking, and neither hands out a second id.
create function metric_series_register(p_agents int8[], p_names text[])
returns table (agent_id int8, name text, id int4) language plpgsql as $$
#variable_conflict use_column
declare
  a int8;
  fresh int4[];
begin
  if cardinality(p_agents) is distinct from cardinality(p_names) then
    raise exception 'metric_series_register: % agents for % names', cardinality(p_agents), cardinality(p_names);
  end if;
  insert into metric_names (name) select distinct n from unnest(p_names) n order by n on conflict (name) do nothing;
  insert into metric_agent_series (agent_id, name_ids, ids)
    select distinct x, '{}'::int4[], '{}'::int4[] from unnest(p_agents) x order by 1
    on conflict (agent_id) do nothing;
  perform 1 from metric_agent_series s where s.agent_id = any(p_agents) order by s.agent_id for update;
  for a, fresh in
    select w.agent_id, array_agg(w.nid order by w.ord)
    from (select r.agent_id, n.id as nid, min(r.ord) as ord
          from unnest(p_agents, p_names) with ordinality as r(agent_id, name, ord)
          join metric_names n on n.name = r.name
          group by r.agent_id, n.id) w
    left join (select s.agent_id, e.nid from metric_agent_series s cross join lateral unnest(s.name_ids) as e(nid)
               where s.agent_id = any(p_agents)) h on h.agent_id = w.agent_id and h.nid = w.nid
    where h.nid is null
    group by w.agent_id
    order by w.agent_id
  loop
    update metric_agent_series s
      set name_ids = s.name_ids || fresh,
          ids = s.ids || array(select nextval('metric_series_id_seq')::int4 from generate_series(1, cardinality(fresh)) g order by g)
      where s.agent_id = a;
  end loop;
  return query
    select r.agent_id, r.name, h.id
    from unnest(p_agents, p_names) as r(agent_id, name)
    join metric_names n on n.name = r.name
    join (select s.agent_id, u.id, u.name_id from metric_agent_series s cross join lateral unnest(s.ids, s.name_ids) as u(id, name_id)
          where s.agent_id = any(p_agents)) h on h.agent_id = r.agent_id and h.name_id = n.id;
end $$;

create function metric_series_insert() returns trigger language plpgsql as $$
begin
  select r.id into new.id from metric_series_register(array[new.agent_id], array[new.name]) r;
  return new;
end $$;
create trigger metric_series_insert instead of insert on metric_series for each row execute function metric_series_insert();
