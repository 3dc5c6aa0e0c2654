-- Several server nodes (src/cluster/): a revocation, from whichever node or tool makes it, is
-- announced to every node at commit, so each drops the agent's cached key and open streams at
-- once instead of at its next directory recheck.
create function servermind_notify_revoked() returns trigger language plpgsql as $$
begin
  perform pg_notify('servermind_revoked', new.id::text);
  return new;
end $$;
create trigger agents_revoked after update of revoked_at on agents
  for each row when (new.revoked_at is not null and old.revoked_at is distinct from new.revoked_at)
  execute function servermind_notify_revoked();
