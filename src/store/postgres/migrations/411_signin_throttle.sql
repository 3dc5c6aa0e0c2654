-- Sign-in throttling (src/auth/throttle.ts): one row per key, e.g. "ip:203.0.113.7",
-- "acct-ip:alice|203.0.113.7", "acct:alice", "mfa:alice". `failures` counts attempts charged
-- since the count last decayed; `blocked_until` is the end of the current backoff window.
-- Keys name the typed username, known or not, so unknown accounts behave like known ones.
create table signin_throttle (
  key             text primary key,
  failures        integer not null default 0,
  last_failure_at timestamptz not null default now(),
  blocked_until   timestamptz
);
create index signin_throttle_last_failure on signin_throttle (last_failure_at);
