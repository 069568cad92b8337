-- What status needs from every member: preload list, recovery state, and the Citus extension version.
SELECT current_setting('shared_preload_libraries'),
       pg_catalog.pg_is_in_recovery(),
       (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'citus')
