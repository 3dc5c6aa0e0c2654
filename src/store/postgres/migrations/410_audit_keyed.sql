-- Issue 12 (audit that holds): a keyed chain, signed checkpoints, and a purge only the owner's
-- function can perform. See docs/security.md, "Audit trail".

-- alg 0: the legacy plain SHA-256 chain (rows written before this migration keep it);
-- alg 1: HMAC-SHA256 with a key kept outside PostgreSQL. Every row written from now on is alg 1.
alter table audit_log add column alg smallint not null default 0 check (alg in (0, 1));

-- The audit page filters by category, newest first.
create index audit_log_category on audit_log (category, id);

-- Signed checkpoints: {seq, mac and time of the row at seq, digest of the rows since the
-- previous checkpoint, time}, signed with an Ed25519 key kept outside PostgreSQL. Also appended to
-- <data>/audit/checkpoints.ndjson.
create table audit_checkpoints (
  seq        bigint primary key,
  from_seq   bigint not null,
  mac        bytea not null,
  digest     bytea not null,
  head_ts    timestamptz not null,
  ts         timestamptz not null,
  keyed_from bigint not null,
  signature  bytea not null
);

create trigger audit_checkpoints_no_update before update or delete on audit_checkpoints
  for each row execute function audit_append_only();
create trigger audit_checkpoints_no_truncate before truncate on audit_checkpoints
  for each statement execute function audit_append_only();

-- Retention purge: the only way rows leave audit_log. SECURITY DEFINER, so it runs as the owner;
-- the runtime role has no DELETE on audit_log, only EXECUTE on this function. It reads the
-- retention from the audit settings itself and never keeps fewer than 30 days, so a caller
-- cannot ask it to delete recent rows. Returns the number of rows deleted.
create function audit_purge_by_retention() returns bigint
  language plpgsql security definer set search_path = public, pg_temp as $$
declare
  days integer;
  cutoff timestamptz;
  last_id bigint;
  next_id bigint;
  next_prev bytea;
  last_hash bytea;
  n bigint;
begin
  select greatest(30, coalesce((value->>'retentionDays')::integer, 365)) into days
    from console_settings where key = 'audit';
  days := coalesce(days, 365);
  cutoff := now() - make_interval(days => days);
  perform pg_advisory_xact_lock(1568279831); -- 0x5e7a0d17, the append lock of src/audit/audit.ts
  select max(id) into last_id from audit_log where ts < cutoff;
  if last_id is null then
    return 0;
  end if;
  select id, prev_hash into next_id, next_prev from audit_log where id > last_id order by id limit 1;
  select hash into last_hash from audit_log where id = last_id;
  perform set_config('servermind.audit_purge', 'on', true);
  delete from audit_log where id <= last_id;
  get diagnostics n = row_count;
  update audit_anchor set first_id = coalesce(next_id, last_id + 1),
    prev_hash = coalesce(next_prev, last_hash) where id = 1;
  perform set_config('servermind.audit_purge', 'off', true);
  return n;
end $$;
revoke all on function audit_purge_by_retention() from public;
