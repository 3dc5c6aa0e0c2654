-- Enterprise sign-in (issue 6): identity providers, group-to-role mappings, pending login
-- requests and the SAML assertion replay cache. Users, external identities (user_identities),
-- roles and their host-group scopes (console_roles.scope_tags) are the console's (100_console.sql).

-- One row per configured provider. `config` holds the kind-specific settings (issuer, client id,
-- IdP metadata, LDAP URLs, claim names...). Secrets in it are never logged or audited.
create table sso_providers (
  id         text primary key check (id ~ '^[a-z0-9][a-z0-9_-]{0,31}$'),
  kind       text not null check (kind in ('oidc', 'saml', 'ldap')),
  name       text not null default '',
  enabled    boolean not null default true,
  config     jsonb not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- An external group (as the provider names it: OIDC groups claim value, SAML attribute value,
-- LDAP group cn or DN) grants a console role. Matching is case-insensitive.
create table sso_group_mappings (
  provider_id    text not null references sso_providers(id) on delete cascade,
  external_group text not null,
  role_id        bigint not null references console_roles(id) on delete cascade,
  primary key (provider_id, external_group, role_id)
);
create index sso_group_mappings_lookup on sso_group_mappings (provider_id, lower(external_group));

-- Which roles a user holds because of a provider's mapping, so they are taken away again when the
-- group disappears; roles granted by hand in the console (no row here) are left alone.
alter table user_roles add column granted_by text not null default 'manual';

-- A login started here and not finished yet: OIDC state/nonce/PKCE verifier, or a SAML
-- AuthnRequest ID (InResponseTo). Consumed exactly once; stale rows are purged.
create table sso_login_requests (
  key         text primary key,
  provider_id text not null references sso_providers(id) on delete cascade,
  data        jsonb not null default '{}',
  created_at  timestamptz not null default now(),
  expires_at  timestamptz not null
);
create index sso_login_requests_expiry on sso_login_requests (expires_at);

-- Every accepted SAML assertion ID, kept until it would have expired anyway: a second use is a replay.
create table sso_saml_assertions (
  provider_id  text not null,
  assertion_id text not null,
  expires_at   timestamptz not null,
  primary key (provider_id, assertion_id)
);
create index sso_saml_assertions_expiry on sso_saml_assertions (expires_at);
