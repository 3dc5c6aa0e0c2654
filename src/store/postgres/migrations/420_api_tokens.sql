-- Personal API tokens (src/auth/api-tokens.ts). The token itself (smp_<base64url of 32 random
-- bytes>) is shown once and never stored: only its SHA-256. `permissions` and `scope_tags` are
-- what the owner chose at creation; at every use they are intersected again with the owner's
-- current roles. `scope_tags` empty: the owner's own host scope. `ai_client` marks a token an AI
-- client (e.g. an MCP server) uses, `client_name` names it. Deleting the owner deletes the tokens.
create table api_tokens (
  id           bigint generated always as identity primary key,
  user_id      bigint not null references console_users(id) on delete cascade,
  name         text not null check (length(name) between 1 and 64),
  token_hash   bytea not null unique check (length(token_hash) = 32),
  hint         text not null,
  permissions  text[] not null,
  scope_tags   text[] not null default '{}',
  ai_client    boolean not null default false,
  client_name  text not null default '',
  created_at   timestamptz not null default now(),
  expires_at   timestamptz not null,
  last_used_at timestamptz,
  last_used_ip text,
  revoked_at   timestamptz,
  revoked_by   text
);
create index api_tokens_user on api_tokens (user_id, created_at desc);
