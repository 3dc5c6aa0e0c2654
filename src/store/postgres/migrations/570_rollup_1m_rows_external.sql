-- Minute-tier rollup rows out of line, as they are (issue #19: bytes per sample), as migration 565
-- did for compacted metric rows. The rollup job now writes an hour of a host's series as one
-- zstd-compressed row of ~10-20 kB (src/store/postgres/rollup-blocks.ts) instead of rows under
-- the 2 kB TOAST threshold; PostgreSQL is told not to compress it again. Existing rows stay as
-- they are until the job recomputes their hour or retention drops them.
alter table metric_rollup_1m_blocks alter column block set storage external;
