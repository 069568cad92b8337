-- The drill's table (patroni_citus.drill.TABLE), made once; drill_distribute_table.sql distributes it.
CREATE TABLE IF NOT EXISTS patroni_citus_drill (id bigint PRIMARY KEY, payload text)
