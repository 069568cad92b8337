-- One drill read: the row of an acknowledged write.
SELECT payload FROM patroni_citus_drill WHERE id = %(id)s
