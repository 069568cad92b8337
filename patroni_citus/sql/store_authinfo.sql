-- nodeid 0: the credentials this node's Citus uses for connections to every other node.
INSERT INTO pg_catalog.pg_dist_authinfo (nodeid, rolename, authinfo)
VALUES (0, %(rolename)s, %(authinfo)s)
ON CONFLICT (nodeid, rolename) DO UPDATE SET authinfo = EXCLUDED.authinfo
WHERE pg_dist_authinfo.authinfo IS DISTINCT FROM EXCLUDED.authinfo
