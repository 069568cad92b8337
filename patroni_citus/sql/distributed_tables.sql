-- Every distributed or reference table, as (schema, table) for a quoted LOCK TABLE.
SELECT n.nspname, c.relname
FROM pg_catalog.pg_dist_partition p
JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
ORDER BY 1, 2
