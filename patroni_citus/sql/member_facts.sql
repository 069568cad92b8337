-- What status needs from every member: preload list, recovery state, the Citus extension version,
-- and a replica's replay lag in seconds (0 when it has replayed all it received: an idle primary
-- must not look like a lagging replica; NULL on a primary or before the first replayed transaction).
SELECT current_setting('shared_preload_libraries'),
       pg_catalog.pg_is_in_recovery(),
       (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'citus'),
       CASE
         WHEN NOT pg_catalog.pg_is_in_recovery() THEN NULL
         WHEN pg_catalog.pg_last_wal_receive_lsn() = pg_catalog.pg_last_wal_replay_lsn() THEN 0
         ELSE extract(epoch FROM now() - pg_catalog.pg_last_xact_replay_timestamp())::float8
       END
