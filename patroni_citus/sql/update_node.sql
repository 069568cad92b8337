-- force + lock_cooldown: after a failover, sessions still holding locks on the dead node's shards
-- would otherwise block the move indefinitely (the "hanging citus_update_node" users report).
SELECT pg_catalog.citus_update_node(%(nodeid)s, %(host)s, %(port)s, force => true, lock_cooldown => %(lock_cooldown)s)
