-- The credentials this node's Citus uses towards every other node (nodeid 0); compared, never shown.
SELECT authinfo FROM pg_catalog.pg_dist_authinfo WHERE nodeid = 0 AND rolename = %(rolename)s
