-- For this transaction only: its statements carry the new superuser password (pg_dist_authinfo) or
-- its SCRAM verifier (ALTER ROLE), so keep their text out of the server log (also when they fail)
-- and out of pg_stat_statements; and change the role on this node alone: every group is rotated
-- explicitly, and Citus propagating ALTER ROLE to workers would wait on their open rotation.
SET LOCAL log_statement = 'none';
SET LOCAL log_min_duration_statement = -1;
SET LOCAL log_min_error_statement = 'panic';
SET LOCAL pg_stat_statements.track_utility = off;
SET LOCAL citus.enable_alter_role_propagation = off;
