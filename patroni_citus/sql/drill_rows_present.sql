-- Which of the acknowledged ids are still there after the fault (any missing one is a lost write).
SELECT id FROM patroni_citus_drill WHERE id = ANY(%(ids)s)
