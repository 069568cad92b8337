-- Only secondaries are ever removed: a secondary holds no shard placements of its own.
SELECT pg_catalog.citus_remove_node(%(host)s, %(port)s)
