-- Every hold session (application_name HOLD_NAME_PREFIX || group) with an open transaction, and
-- how many seconds that transaction has run: what status shows as clients waiting on a group.
SELECT application_name, extract(epoch FROM pg_catalog.clock_timestamp() - xact_start)
FROM pg_catalog.pg_stat_activity
WHERE application_name LIKE %(pattern)s AND xact_start IS NOT NULL
