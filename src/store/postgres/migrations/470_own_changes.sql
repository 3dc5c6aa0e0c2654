-- File changes made by ServerMind's own operations (issue #17): which of them caused a FIM event.
-- A FIM event on a host is ServerMind's own when, on that host, within 2 minutes before it (or up
-- to 30 s after, for clock skew between agent and server), one of these touched the same path:
--   * an applied remediation (security_commands cis.remediate, dryRun false, ok): result.changes[].path
--   * a remediation rollback (cis.rollback, ok): result.restored[]
--   * a file operation that changes files (file_operations, success): path and to_path; a file
--     rollback restores the path of the operation whose snapshot it names
-- The answer is "<what> by <who>" (the newest match), or null for a change nobody here made.
-- Paths compare exactly, as the agent reports them (absolute host paths).
create function servermind_change(p_agent bigint, p_path text, p_from text, p_ts timestamptz) returns text
language sql stable as $$
  select what from (
    select c.issued_at as at, case c.action when 'cis.rollback' then 'remediation rollback' else 'remediation' end || ' by ' || c.requested_by as what
    from security_commands c
    where c.agent_id = p_agent and c.status = 'ok'
      and c.issued_at between p_ts - interval '2 minutes' and p_ts + interval '30 seconds'
      and ((c.action = 'cis.remediate' and c.args->>'dryRun' = 'false'
            and exists (select 1 from jsonb_array_elements(coalesce(c.result->'changes', '[]'::jsonb)) ch where ch->>'path' in (p_path, p_from)))
        or (c.action = 'cis.rollback'
            and exists (select 1 from jsonb_array_elements_text(coalesce(c.result->'restored', '[]'::jsonb)) r where r in (p_path, p_from))))
    union all
    select o.ts, 'file ' || o.op || ' by ' || o.actor
    from file_operations o
    where o.agent_id = p_agent and o.success and o.op not in ('list', 'read')
      and o.ts between p_ts - interval '2 minutes' and p_ts + interval '30 seconds'
      and (o.path in (p_path, p_from) or o.to_path in (p_path, p_from)
        or (o.op = 'rollback' and exists (select 1 from file_operations f where f.agent_id = o.agent_id and f.snapshot = o.path and f.op <> 'rollback' and f.path in (p_path, p_from))))
  ) m order by at desc limit 1
$$;
