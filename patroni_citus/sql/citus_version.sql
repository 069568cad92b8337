SELECT pg_catalog.citus_version()
