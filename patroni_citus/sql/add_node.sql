SELECT pg_catalog.citus_add_node(%(host)s, %(port)s, groupid => %(group)s, noderole => %(role)s)
