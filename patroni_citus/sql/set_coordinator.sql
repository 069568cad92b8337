SELECT pg_catalog.citus_set_coordinator_host(%(host)s, %(port)s)
