-- Issue #14: every permission in the catalogue gates a real route, or is removed. The backups.*
-- permissions had no route yet (the backup engine and its destinations run in the agent; the
-- console's backup pages are still to come, issue #15), so they leave the catalogue until those
-- routes exist, and stored custom roles and API tokens lose them, as migration 460 did for the
-- others (validateRole and validateTokenRequest refuse unknown ids).
update console_roles r set
  permissions = array(select u.p from unnest(r.permissions) with ordinality as u(p, n) where u.p not like 'backups.%' order by u.n),
  updated_at = now()
where exists (select 1 from unnest(r.permissions) as u(p) where u.p like 'backups.%');

update api_tokens t set
  permissions = array(select u.p from unnest(t.permissions) with ordinality as u(p, n) where u.p not like 'backups.%' order by u.n)
where exists (select 1 from unnest(t.permissions) as u(p) where u.p like 'backups.%');
