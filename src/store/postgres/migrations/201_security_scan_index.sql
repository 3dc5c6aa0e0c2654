-- The posture job reads each agent's cis.scan events after the last batch it recorded, right
-- after they commit (src/main.ts); this keeps that read off the rest of security_events.
create index security_events_cis_scan on security_events (agent_id, batch_id) where type = 'cis.scan';
