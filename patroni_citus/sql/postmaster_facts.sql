-- Whether this PostgreSQL is a primary, and when its postmaster started: a restart changes the latter.
SELECT pg_catalog.pg_is_in_recovery(), pg_catalog.pg_postmaster_start_time()
