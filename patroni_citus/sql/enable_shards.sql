SELECT pg_catalog.citus_set_node_property(%(host)s, %(port)s, 'shouldhaveshards', true)
