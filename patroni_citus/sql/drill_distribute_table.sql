-- Distribute the drill's table by id unless it already is (a re-run of a drill finds it distributed).
SELECT create_distributed_table('patroni_citus_drill', 'id')
WHERE NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = 'patroni_citus_drill'::regclass
)
