-- Issue #14: the permission catalogue (src/auth/permissions.ts) keeps only permissions that gate
-- something (test/auth/permission-coverage.test.ts). These 48 gated nothing (alerts,
-- notifications, vulnerabilities, containers, network, patches, reports, commands and other
-- features that do not exist) and left the catalogue; strip them from custom roles and API
-- tokens so no stored grant names an unknown permission (validateRole and validateTokenRequest
-- refuse unknown ids). Order is kept; built-in roles are rewritten from the catalogue at start anyway.
create temporary table pruned_permissions (id text primary key);
insert into pruned_permissions (id) values
  ('hosts.delete'), ('hosts.groups.view'), ('hosts.groups.edit'),
  ('metrics.export'), ('metrics.dashboards.edit'),
  ('logs.search'), ('logs.export'),
  ('inventory.export'), ('inventory.history.view'),
  ('processes.kill'),
  ('agents.view'), ('agents.download'), ('agents.update'), ('agents.config.edit'),
  ('alerts.view'), ('alerts.acknowledge'), ('alerts.rules.view'), ('alerts.rules.edit'), ('alerts.rules.delete'), ('alerts.silence'),
  ('notifications.view'), ('notifications.edit'), ('notifications.test'),
  ('security.events.acknowledge'), ('security.rules.view'), ('security.rules.edit'),
  ('vulnerabilities.view'), ('vulnerabilities.scan'), ('vulnerabilities.suppress'),
  ('fim.baseline.view'), ('fim.baseline.accept'), ('fim.rules.view'), ('fim.rules.edit'),
  ('commands.run'), ('commands.history.view'),
  ('patches.view'), ('patches.apply'),
  ('containers.view'), ('containers.manage'),
  ('network.view'), ('network.firewall.edit'),
  ('settings.general.edit'), ('settings.retention.edit'), ('settings.integrations.edit'),
  ('ai.settings.edit'),
  ('reports.view'), ('reports.create'),
  ('system.health.view');

update console_roles r set
  permissions = array(select u.p from unnest(r.permissions) with ordinality as u(p, n)
    where not exists (select 1 from pruned_permissions x where x.id = u.p) order by u.n),
  updated_at = now()
where exists (select 1 from unnest(r.permissions) as u(p) join pruned_permissions x on x.id = u.p);

update api_tokens t set
  permissions = array(select u.p from unnest(t.permissions) with ordinality as u(p, n)
    where not exists (select 1 from pruned_permissions x where x.id = u.p) order by u.n)
where exists (select 1 from unnest(t.permissions) as u(p) join pruned_permissions x on x.id = u.p);

drop table pruned_permissions;
