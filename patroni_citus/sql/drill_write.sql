-- One drill write: a small distributed row.
INSERT INTO patroni_citus_drill (id, payload) VALUES (%(id)s, 'drill')
