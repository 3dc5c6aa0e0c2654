-- Alerts and notifications (issue 18): rules, alert instances and their transitions, silences
-- and maintenance windows, notification channels (secrets sealed with src/auth/secret-box.ts),
-- the notifications of alert groups and every delivery attempt. Evaluated by src/alerts/.

create table alert_rules (
  id          bigint generated always as identity primary key,
  name        text not null unique,
  kind        text not null check (kind in ('metric_threshold', 'metric_rate', 'metric_absent', 'host_offline',
                'security_score_drop', 'cis_critical', 'fim_critical_path', 'failed_signins', 'log_pattern')),
  enabled     boolean not null default true,
  severity    text not null check (severity in ('info', 'warning', 'critical')),
  -- empty: every host; otherwise hosts carrying at least one of these tags
  scope_tags  text[] not null default '{}',
  labels      jsonb not null default '{}',
  -- the kind's parameters (src/alerts/rules.ts validates them): metric, op, threshold, clear, ...
  params      jsonb not null default '{}',
  -- a condition must hold this long before the alert fires (pending until then)
  for_seconds integer not null default 0 check (for_seconds >= 0),
  -- empty: every enabled channel
  channel_ids bigint[] not null default '{}',
  -- Alertmanager-style grouping: alerts of one rule with equal values of these labels are one notification
  group_by    text[] not null default '{}',
  group_wait_seconds      integer not null default 30 check (group_wait_seconds >= 0),
  group_interval_seconds  integer not null default 300 check (group_interval_seconds >= 0),
  repeat_interval_seconds integer not null default 14400 check (repeat_interval_seconds > 0),
  builtin     boolean not null default false,
  created_by  text not null,
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now()
);

-- One alert: a rule's condition on one subject (a host, a host's series, an account).
create table alert_instances (
  id              bigint generated always as identity primary key,
  rule_id         bigint not null references alert_rules(id) on delete cascade,
  agent_id        bigint references agents(id),
  fingerprint     text not null,
  subject         text not null default '',
  state           text not null check (state in ('pending', 'firing', 'resolved')),
  value           double precision,
  summary         text not null default '',
  labels          jsonb not null default '{}',
  started_at      timestamptz not null,
  fired_at        timestamptz,
  resolved_at     timestamptz,
  acknowledged_at timestamptz,
  acknowledged_by text,
  ack_note        text,
  updated_at      timestamptz not null default now()
);
create unique index alert_instances_open on alert_instances (rule_id, fingerprint) where state <> 'resolved';
create index alert_instances_state on alert_instances (state, started_at desc);
create index alert_instances_agent on alert_instances (agent_id, started_at desc);

-- Every state change of every alert (and its acknowledgement), for the timeline and the host page.
create table alert_transitions (
  id          bigint generated always as identity primary key,
  instance_id bigint not null references alert_instances(id) on delete cascade,
  from_state  text,
  to_state    text not null check (to_state in ('pending', 'firing', 'resolved', 'acknowledged')),
  at          timestamptz not null default now(),
  value       double precision,
  actor       text not null default 'evaluator',
  note        text not null default ''
);
create index alert_transitions_instance on alert_transitions (instance_id, at);
create index alert_transitions_at on alert_transitions (at desc);

-- A silence mutes notifications of matching alerts from starts_at to ends_at; a maintenance
-- window also keeps them from firing. Matching: hosts carrying one of the tags (empty: every
-- host) and, when rule_id is set, only that rule.
create table alert_silences (
  id         bigint generated always as identity primary key,
  kind       text not null check (kind in ('silence', 'maintenance')),
  tags       text[] not null default '{}',
  rule_id    bigint references alert_rules(id) on delete cascade,
  starts_at  timestamptz not null,
  ends_at    timestamptz not null check (ends_at > starts_at),
  comment    text not null,
  created_by text not null,
  created_at timestamptz not null default now(),
  expired_at timestamptz
);
create index alert_silences_active on alert_silences (ends_at) where expired_at is null;

create table notification_channels (
  id         bigint generated always as identity primary key,
  name       text not null unique,
  kind       text not null check (kind in ('email', 'webhook', 'slack', 'pagerduty')),
  -- what is not secret: SMTP host, port, sender, recipients; webhook URL
  config     jsonb not null default '{}',
  -- sealed (src/auth/secret-box.ts): SMTP password, HMAC key, Slack webhook URL, PagerDuty routing key
  secret     text,
  enabled    boolean not null default true,
  created_by text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- The state of one alert group (Alertmanager's aggregation group): when it was first seen and
-- last notified, and what the last notification said.
create table alert_groups (
  group_key        text primary key,
  rule_id          bigint not null references alert_rules(id) on delete cascade,
  first_seen_at    timestamptz not null,
  last_notified_at timestamptz,
  -- sorted fingerprints of the firing alerts and of the resolved ones last notified
  last_firing      text[] not null default '{}',
  last_resolved    text[] not null default '{}'
);

-- One notification of a group to one channel, sent until it succeeds or runs out of attempts.
create table alert_notifications (
  id              bigint generated always as identity primary key,
  group_key       text not null,
  rule_id         bigint references alert_rules(id) on delete set null,
  channel_id      bigint not null references notification_channels(id) on delete cascade,
  payload         jsonb not null,
  status          text not null default 'pending' check (status in ('pending', 'sent', 'failed')),
  attempts        integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  last_error      text,
  created_at      timestamptz not null default now(),
  sent_at         timestamptz
);
create index alert_notifications_due on alert_notifications (next_attempt_at) where status = 'pending';
create index alert_notifications_created on alert_notifications (created_at desc);

create table alert_delivery_attempts (
  id              bigint generated always as identity primary key,
  notification_id bigint not null references alert_notifications(id) on delete cascade,
  attempt         integer not null,
  at              timestamptz not null default now(),
  ok              boolean not null,
  status_code     integer,
  error           text,
  duration_ms     integer not null
);
create index alert_delivery_attempts_notification on alert_delivery_attempts (notification_id, attempt);

-- The starter set, enabled on install.
insert into alert_rules (name, kind, severity, params, for_seconds, builtin, created_by) values
  ('Host offline', 'host_offline', 'critical', '{"offline_seconds": 180}', 0, true, 'install'),
  ('Disk over 90 %', 'metric_threshold', 'warning', '{"metric": "disk.used_pct", "op": ">", "threshold": 90, "clear": 85}', 300, true, 'install'),
  ('Critical CIS violation', 'cis_critical', 'critical', '{"min_severity": 7}', 0, true, 'install');
