-- Row ids (from start on) whose shard lives on the group: every drill write reaches the faulted group.
SELECT i
FROM generate_series(%(start)s::bigint, %(start)s::bigint + 200000) i
WHERE get_shard_id_for_distribution_column('patroni_citus_drill', i) IN (
    SELECT p.shardid FROM pg_catalog.pg_dist_placement p WHERE p.groupid = %(group)s
)
LIMIT 20000
