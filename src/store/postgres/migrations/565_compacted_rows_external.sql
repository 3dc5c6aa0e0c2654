-- Compacted metric rows out of line, as they are (issue #19: bytes per sample).
-- Compaction (src/store/postgres/compaction.ts) now writes an hour of a host's series as one row
-- of ~30 kB instead of ~20 rows under the 2 kB TOAST threshold: those paid a row header, six
-- columns and an index entry each (~7 % of the bytes), and left pages ~9 % empty. The block is
-- zstd-compressed already (block version 4), so PostgreSQL is told not to try compressing it again
-- before moving it to the TOAST table. Ingest's rows stay under 2 kB and inline, as before.
-- Partitions created later copy the setting (partitions.ts creates them `including storage`).
alter table metric_blocks alter column block set storage external;
