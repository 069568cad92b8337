"""Start and stop a local formation (etcd + Patroni groups) on 127.0.0.1, and the PostgreSQL it runs."""
