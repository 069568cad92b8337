"""patroni-citus: keep Citus loaded and its node metadata correct under Patroni HA."""

__version__ = "0.1.0"
