-- Seconds the hold's transaction has been open, if its session is there (it has a unique name).
SELECT extract(epoch FROM pg_catalog.clock_timestamp() - xact_start)
FROM pg_catalog.pg_stat_activity
WHERE application_name = %(application_name)s AND xact_start IS NOT NULL
ORDER BY xact_start
LIMIT 1
