-- Console accounts, sessions, RBAC, settings and the append-only audit trail (issue 4).
-- Users are ready for external identities (issue 6): password_hash may be null and
-- user_identities maps (provider, subject) to a user.

create table console_users (
  id                  bigint generated always as identity primary key,
  username            text not null unique check (username ~ '^[a-z0-9][a-z0-9._@-]{1,63}$'),
  display_name        text not null default '',
  email               text not null default '',
  password_hash       text,
  password_changed_at timestamptz,
  auth_source         text not null default 'local',
  break_glass         boolean not null default false,
  totp_secret         text,
  totp_enabled_at     timestamptz,
  totp_last_step      bigint not null default 0,
  failed_logins       integer not null default 0,
  locked_until        timestamptz,
  disabled_at         timestamptz,
  last_login_at       timestamptz,
  created_at          timestamptz not null default now()
);

create table user_identities (
  user_id   bigint not null references console_users(id) on delete cascade,
  provider  text not null,
  subject   text not null,
  linked_at timestamptz not null default now(),
  primary key (provider, subject)
);

create table password_history (
  user_id       bigint not null references console_users(id) on delete cascade,
  password_hash text not null,
  created_at    timestamptz not null default now()
);
create index password_history_user on password_history (user_id, created_at desc);

create table backup_codes (
  user_id   bigint not null references console_users(id) on delete cascade,
  code_hash bytea not null,
  used_at   timestamptz,
  primary key (user_id, code_hash)
);

create table console_roles (
  id          bigint generated always as identity primary key,
  name        text not null unique,
  description text not null default '',
  builtin     boolean not null default false,
  permissions text[] not null default '{}',
  -- empty: every host; otherwise only hosts carrying one of these tags ("group:web" for groups)
  scope_tags  text[] not null default '{}',
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now()
);

create table user_roles (
  user_id bigint not null references console_users(id) on delete cascade,
  role_id bigint not null references console_roles(id) on delete cascade,
  primary key (user_id, role_id)
);

-- Sessions live here so several server nodes share them. The cookie holds a random token;
-- only its SHA-256 is stored.
create table console_sessions (
  id           bigint generated always as identity primary key,
  token_hash   bytea not null unique,
  user_id      bigint not null references console_users(id) on delete cascade,
  -- 'mfa': password accepted, TOTP pending; 'enroll': must enroll TOTP; 'password': must change an expired password; 'full'
  stage        text not null check (stage in ('mfa', 'enroll', 'password', 'full')),
  csrf_token   text not null,
  ip           text not null default '',
  user_agent   text not null default '',
  created_at   timestamptz not null default now(),
  last_seen_at timestamptz not null default now(),
  expires_at   timestamptz not null,
  reauth_at    timestamptz,
  pending_totp text,
  revoked_at   timestamptz,
  revoked_reason text
);
create index console_sessions_user on console_sessions (user_id) where revoked_at is null;

create table console_settings (
  key        text primary key,
  value      jsonb not null,
  updated_at timestamptz not null default now()
);

create table console_setup (
  id         integer primary key check (id = 1),
  code_hash  bytea not null,
  created_at timestamptz not null default now(),
  used_at    timestamptz
);

-- Audit trail: append-only, every row hash-chained to the one before it.
create table audit_log (
  id           bigint generated always as identity primary key,
  ts           timestamptz not null,
  actor_type   text not null check (actor_type in ('user', 'agent', 'ai', 'system', 'anonymous')),
  actor_id     text not null default '',
  actor_name   text not null default '',
  on_behalf_of text not null default '',
  ip           text not null default '',
  user_agent   text not null default '',
  category     text not null check (category in ('authentication', 'user_management', 'config_change',
                 'service_operation', 'file_operation', 'security_event', 'ai_operation')),
  action       text not null,
  target       text not null default '',
  success      boolean not null,
  details      jsonb not null default '{}',
  prev_hash    bytea not null,
  hash         bytea not null unique
);
create index audit_log_ts on audit_log (ts);
create index audit_log_action on audit_log (action, ts);
create index audit_log_actor on audit_log (actor_name, ts);

-- Where the chain starts after a retention purge: the hash the oldest kept row points to.
create table audit_anchor (
  id        integer primary key check (id = 1),
  first_id  bigint not null,
  prev_hash bytea not null
);
insert into audit_anchor values (1, 1, '\x0000000000000000000000000000000000000000000000000000000000000000');

-- Append-only: UPDATE, DELETE and TRUNCATE are refused unless the retention purge set
-- servermind.audit_purge for its own transaction (src/audit/retention.ts).
create function audit_append_only() returns trigger language plpgsql as $$
begin
  if tg_op = 'DELETE' and tg_table_name = 'audit_log'
     and coalesce(current_setting('servermind.audit_purge', true), '') = 'on' then
    return old;
  end if;
  if tg_op = 'UPDATE' and tg_table_name = 'audit_anchor'
     and coalesce(current_setting('servermind.audit_purge', true), '') = 'on' then
    return new;
  end if;
  raise exception 'audit trail is append-only: % on % refused', tg_op, tg_table_name;
end $$;

create trigger audit_log_no_update before update or delete on audit_log
  for each row execute function audit_append_only();
create trigger audit_log_no_truncate before truncate on audit_log
  for each statement execute function audit_append_only();
create trigger audit_anchor_guard before update or delete on audit_anchor
  for each row execute function audit_append_only();
