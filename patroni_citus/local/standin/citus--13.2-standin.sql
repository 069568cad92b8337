-- patroni-citus stand-in for the Citus extension, version 13.2-standin: a test double, NOT Citus.
--
-- Why it exists: Citus is in no package registry the test machines reach, so where it is absent
-- the test harness installs this file (and a do-nothing `citus.so`) into a PRIVATE copy of the
-- PostgreSQL tree. It models, in plpgsql, the Citus 13.2 metadata objects patroni-citus uses,
-- with the real names, argument names, defaults, error texts and SQLSTATEs (checked against
-- Citus v13.2.2: src/backend/distributed/metadata/node_metadata.c and a real build's probe):
--   pg_dist_node, pg_dist_local_group, pg_dist_partition, pg_dist_authinfo, noderole,
--   citus_version, citus_add_node, citus_update_node, citus_set_coordinator_host,
--   citus_set_node_property, citus_remove_node, citus_get_active_worker_nodes,
--   create_distributed_table.
--
-- Limitations (real Citus differs; never rely on these in production reasoning):
--   * The stand-in never connects to other nodes. citus_add_node succeeds for an unreachable
--     worker (real Citus fails to connect), cannot refuse "Node cannot add itself as a worker",
--     and workers' copies of the metadata (their pg_dist_node, their pg_dist_local_group) are
--     never written: real Citus syncs them during citus_add_node and afterwards.
--   * Metadata resync. citus_update_node marks every metadata worker metadatasynced = false, as
--     real Citus does; its maintenance daemon then resyncs reachable workers, usually within a
--     second of the commit (retrying every 5 s, citus.metadata_sync_retry_interval, while a worker
--     is unreachable). Until then real Citus refuses citus_add_node, citus_set_coordinator_host,
--     citus_set_node_property, citus_remove_node and create_distributed_table with
--     "<host>:<port> is a metadata node, but is out of sync". The stand-in models the daemon
--     with one rule, "as if every worker were reachable": a row unsynced by a committed
--     transaction at least 1 s earlier is synced again (citus_standin_resync_stale(), not in
--     Citus). When citus.so is preloaded, its background worker applies that rule about once a
--     second on a primary, in the database named by the setting citus_standin.database
--     (default 'citus'; real Citus does this in every database it runs in), so a plain SELECT on
--     pg_dist_node sees metadatasynced = true again within ~2 s. The stand-in's own functions
--     also apply it first (the only resync where the library is not preloaded or the database
--     is another). citus_standin_mark_synced() (not in Citus) resyncs every row at once.
--   * force/lock_cooldown of citus_update_node are accepted and ignored (no shard locks exist).
--   * create_distributed_table only checks and records: no shards, placements or colocation
--     groups are created, the data stays in the local table, partkey holds the column name
--     (real Citus stores a serialized Var) and single-shard tables (NULL column) are refused.
--   * citus_remove_node does not check for shard placements; nothing propagates to workers.
--   * On a worker, citus_set_coordinator_host fails with "operation is not allowed on this node";
--     real Citus 13.2.2 fails there too, but with a distributed-deadlock error.
--   * Not modelled at all: the citus.* settings, shards and placements (pg_dist_shard, ...),
--     pg_dist_node_metadata, the NOTICE about shards left on the coordinator when the first
--     worker joins, and CREATE EXTENSION's switching ssl on (real Citus runs ALTER SYSTEM SET
--     ssl = on and writes a self-signed certificate). authinfo_valid approximates libpq parsing.

\echo Use "CREATE EXTENSION citus" to load this file. \quit

CREATE SCHEMA citus;
CREATE SCHEMA citus_internal;
COMMENT ON SCHEMA citus IS 'patroni-citus stand-in (NOT Citus)';
COMMENT ON SCHEMA citus_internal IS 'patroni-citus stand-in (NOT Citus): internal helpers';

CREATE TYPE citus.distribution_type AS ENUM ('hash', 'range', 'append');
CREATE TYPE pg_catalog.noderole AS ENUM ('primary', 'secondary', 'unavailable');

-- Relations cannot be created in pg_catalog directly; real Citus also creates them in the
-- citus schema and moves them.
CREATE SEQUENCE citus.pg_dist_groupid_seq MINVALUE 1 MAXVALUE 4294967296;
CREATE SEQUENCE citus.pg_dist_node_nodeid_seq MINVALUE 1 MAXVALUE 4294967296;
ALTER SEQUENCE citus.pg_dist_groupid_seq SET SCHEMA pg_catalog;
ALTER SEQUENCE citus.pg_dist_node_nodeid_seq SET SCHEMA pg_catalog;

CREATE TABLE citus.pg_dist_node (
    nodeid integer NOT NULL DEFAULT nextval('pg_catalog.pg_dist_node_nodeid_seq') PRIMARY KEY,
    groupid integer NOT NULL DEFAULT nextval('pg_catalog.pg_dist_groupid_seq'),
    nodename text NOT NULL,
    nodeport integer NOT NULL DEFAULT 5432,
    noderack text NOT NULL DEFAULT 'default',
    hasmetadata boolean NOT NULL DEFAULT false,
    isactive boolean NOT NULL DEFAULT true,
    noderole pg_catalog.noderole NOT NULL DEFAULT 'primary',
    nodecluster name NOT NULL DEFAULT 'default',
    metadatasynced boolean DEFAULT false,
    shouldhaveshards boolean NOT NULL DEFAULT true,
    nodeisclone boolean NOT NULL DEFAULT false,
    nodeprimarynodeid integer NOT NULL DEFAULT 0,
    UNIQUE (nodename, nodeport),
    CONSTRAINT primaries_are_only_allowed_in_the_default_cluster
        CHECK (NOT (nodecluster <> 'default' AND noderole = 'primary'))
);
ALTER TABLE citus.pg_dist_node SET SCHEMA pg_catalog;
COMMENT ON TABLE pg_catalog.pg_dist_node IS 'patroni-citus stand-in (NOT Citus): the nodes of the formation';

-- 0 on the coordinator; real Citus sets a worker's own group here when it syncs metadata to it.
CREATE TABLE citus.pg_dist_local_group (groupid integer NOT NULL PRIMARY KEY);
INSERT INTO citus.pg_dist_local_group VALUES (0);
ALTER TABLE citus.pg_dist_local_group SET SCHEMA pg_catalog;

CREATE TABLE citus.pg_dist_partition (
    logicalrelid regclass NOT NULL,
    partmethod "char" NOT NULL,
    partkey text,
    colocationid integer NOT NULL DEFAULT 0,
    repmodel "char" NOT NULL DEFAULT 'c',
    autoconverted boolean DEFAULT false
);
CREATE UNIQUE INDEX pg_dist_partition_logical_relid_index ON citus.pg_dist_partition (logicalrelid);
ALTER TABLE citus.pg_dist_partition SET SCHEMA pg_catalog;

-- The check functions keep their real names: inserts fail on the same rows as with Citus.
CREATE FUNCTION pg_catalog.role_exists(name) RETURNS boolean
    LANGUAGE sql STABLE STRICT
    AS $$ SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1) $$;
COMMENT ON FUNCTION pg_catalog.role_exists(name) IS 'patroni-citus stand-in (NOT Citus): returns whether a role exists';

-- Real Citus parses the string with libpq and allows only password, sslcert and sslkey; this
-- approximates that with a pattern over key=value pairs (values plain or single-quoted).
CREATE FUNCTION pg_catalog.authinfo_valid(text) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT
    AS $$
    SELECT $1 ~ '^\s*((password|sslcert|sslkey)\s*=\s*(''([^''\\]|\\.)*''|[^\s'']+)\s*)*$'
    $$;
COMMENT ON FUNCTION pg_catalog.authinfo_valid(text) IS 'patroni-citus stand-in (NOT Citus): returns whether an authinfo is valid';

CREATE TABLE citus.pg_dist_authinfo (
    nodeid integer NOT NULL,
    rolename name NOT NULL CONSTRAINT role_exists CHECK (pg_catalog.role_exists(rolename)),
    authinfo text NOT NULL CONSTRAINT authinfo_valid CHECK (pg_catalog.authinfo_valid(authinfo))
);
CREATE UNIQUE INDEX pg_dist_authinfo_identification_index ON citus.pg_dist_authinfo (rolename, nodeid DESC);
ALTER TABLE citus.pg_dist_authinfo SET SCHEMA pg_catalog;

GRANT SELECT ON pg_catalog.pg_dist_node, pg_catalog.pg_dist_local_group, pg_catalog.pg_dist_partition TO PUBLIC;
REVOKE ALL ON pg_catalog.pg_dist_authinfo FROM PUBLIC;

-- One primary per group, whoever writes the row (the same rule as Citus's own trigger).
CREATE FUNCTION citus_internal.pg_dist_node_trigger_func() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    LOCK TABLE pg_catalog.pg_dist_node IN SHARE ROW EXCLUSIVE MODE;
    IF NEW.noderole = 'primary' AND EXISTS (
        SELECT 1 FROM pg_catalog.pg_dist_node other
        WHERE other.groupid = NEW.groupid AND other.noderole = 'primary' AND other.nodeid <> NEW.nodeid
    ) THEN
        RAISE EXCEPTION 'there cannot be two primary nodes in a group';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER pg_dist_node_trigger BEFORE INSERT OR UPDATE ON pg_catalog.pg_dist_node
    FOR EACH ROW EXECUTE FUNCTION citus_internal.pg_dist_node_trigger_func();

-- When the stand-in's model of the maintenance daemon last saw each worker's metadata go stale.
CREATE TABLE citus_internal.standin_unsynced (
    nodeid integer PRIMARY KEY,
    unsynced_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    unsynced_by bigint NOT NULL DEFAULT txid_current()
);

-- Helpers. Messages, hints and SQLSTATEs are those of the C functions they stand in for
-- (XX000 where Citus reports an error without a code).

CREATE FUNCTION citus_internal.standin_ensure_coordinator() RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF (SELECT groupid FROM pg_catalog.pg_dist_local_group) IS DISTINCT FROM 0 THEN
        RAISE EXCEPTION 'operation is not allowed on this node'
            USING ERRCODE = 'XX000', HINT = 'Connect to the coordinator and run it again.';
    END IF;
END;
$$;

CREATE FUNCTION citus_internal.standin_ensure_superuser() RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'operation is not allowed'
            USING ERRCODE = 'XX000', HINT = 'Run the command with a superuser.';
    END IF;
END;
$$;

-- The maintenance daemon's resync (run by citus.so's background worker, and lazily by the
-- functions below): only what a real daemon could already have seen (committed by another
-- transaction) and done (at least 1 s ago).
CREATE FUNCTION citus_internal.standin_resync_due_workers() RETURNS integer
    LANGUAGE plpgsql
    AS $$
DECLARE
    resynced integer;
BEGIN
    UPDATE pg_catalog.pg_dist_node n SET metadatasynced = true
    WHERE n.hasmetadata AND NOT coalesce(n.metadatasynced, false) AND n.isactive
      AND n.noderole = 'primary' AND n.groupid > 0
      AND NOT EXISTS (
          SELECT 1 FROM citus_internal.standin_unsynced u
          WHERE u.nodeid = n.nodeid
            AND (u.unsynced_at > clock_timestamp() - interval '1 second'
                 OR u.unsynced_by = txid_current_if_assigned()));
    GET DIAGNOSTICS resynced = ROW_COUNT;
    DELETE FROM citus_internal.standin_unsynced u
    WHERE NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_dist_node n WHERE n.nodeid = u.nodeid AND NOT coalesce(n.metadatasynced, false));
    RETURN resynced;
END;
$$;

-- Citus's ErrorIfAnyMetadataNodeOutOfSync: metadata changes must reach every metadata node.
CREATE FUNCTION citus_internal.standin_ensure_metadata_nodes_synced() RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
    stale_node pg_catalog.pg_dist_node;
BEGIN
    SELECT * INTO stale_node FROM pg_catalog.pg_dist_node n
    WHERE n.isactive AND n.noderole = 'primary' AND n.hasmetadata AND NOT coalesce(n.metadatasynced, false)
    ORDER BY n.nodeid
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '%:% is a metadata node, but is out of sync', stale_node.nodename, stale_node.nodeport
            USING ERRCODE = '55000',
                  HINT = 'If the node is up, wait until metadata gets synced to it and try again.';
    END IF;
END;
$$;

-- The lookup Citus calls ModifiableWorkerNode: coordinator only, serialised, must exist.
CREATE FUNCTION citus_internal.standin_modifiable_node(node_name text, node_port integer)
    RETURNS pg_catalog.pg_dist_node
    LANGUAGE plpgsql
    AS $$
DECLARE
    found_node pg_catalog.pg_dist_node;
BEGIN
    PERFORM citus_internal.standin_ensure_coordinator();
    PERFORM citus_internal.standin_resync_due_workers();
    LOCK TABLE pg_catalog.pg_dist_node IN EXCLUSIVE MODE;
    SELECT * INTO found_node FROM pg_catalog.pg_dist_node n
    WHERE n.nodename = node_name AND n.nodeport = node_port;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'node at "%:%" does not exist', node_name, node_port USING ERRCODE = 'XX000';
    END IF;
    RETURN found_node;
END;
$$;

-- Citus's AddNodeMetadata: returns the existing id for a known host:port, else inserts a row
-- with the same flags the real function (plus node activation) leaves behind.
CREATE FUNCTION citus_internal.standin_add_node_metadata(
    node_name text, node_port integer, group_id integer, node_role pg_catalog.noderole,
    node_cluster name, should_have_shards boolean)
    RETURNS integer
    LANGUAGE plpgsql
    AS $$
DECLARE
    existing_nodeid integer;
    coordinator_name text;
    is_coordinator boolean;
    new_nodeid integer;
BEGIN
    PERFORM citus_internal.standin_ensure_coordinator();

    LOCK TABLE pg_catalog.pg_dist_node IN EXCLUSIVE MODE;
    SELECT n.nodeid INTO existing_nodeid FROM pg_catalog.pg_dist_node n
    WHERE n.nodename = node_name AND n.nodeport = node_port;
    IF FOUND THEN
        RETURN existing_nodeid;
    END IF;

    IF group_id <> 0 AND node_name <> 'localhost' THEN
        SELECT n.nodename INTO coordinator_name FROM pg_catalog.pg_dist_node n
        WHERE n.groupid = 0 AND n.noderole = 'primary';
        IF coordinator_name = 'localhost' THEN
            RAISE EXCEPTION 'cannot add a worker node when the coordinator hostname is set to localhost'
                USING ERRCODE = 'XX000',
                      DETAIL = 'Worker nodes need to be able to connect to the coordinator to transfer data.',
                      HINT = 'Use SELECT citus_set_coordinator_host(''<hostname>'') to configure the coordinator hostname';
        END IF;
    END IF;

    IF group_id = -1 THEN
        group_id := nextval('pg_catalog.pg_dist_groupid_seq');
    END IF;
    is_coordinator := group_id = 0;

    IF node_role = 'primary' AND EXISTS (
        SELECT 1 FROM pg_catalog.pg_dist_node n WHERE n.groupid = group_id AND n.noderole = 'primary'
    ) THEN
        RAISE EXCEPTION 'group % already has a primary node', group_id USING ERRCODE = 'XX000';
    END IF;
    IF node_role = 'primary' AND node_cluster <> 'default' THEN
        RAISE EXCEPTION 'primaries must be added to the default cluster' USING ERRCODE = 'XX000';
    END IF;

    PERFORM citus_internal.standin_ensure_metadata_nodes_synced();

    new_nodeid := nextval('pg_catalog.pg_dist_node_nodeid_seq');
    -- Workers: real activation marks the node active and, for primaries, syncs its metadata.
    INSERT INTO pg_catalog.pg_dist_node (
        nodeid, groupid, nodename, nodeport, noderack, hasmetadata, isactive, noderole,
        nodecluster, metadatasynced, shouldhaveshards)
    VALUES (
        new_nodeid, group_id, node_name, node_port, 'default',
        is_coordinator OR node_role = 'primary', true, node_role,
        node_cluster, is_coordinator OR node_role = 'primary', should_have_shards);
    RETURN new_nodeid;
END;
$$;

-- Public functions: the real signatures (names, argument names, defaults, strictness).

CREATE FUNCTION pg_catalog.citus_version() RETURNS text
    LANGUAGE sql STABLE
    AS $$ SELECT 'Citus 13.2.2 stand-in (patroni-citus test double, NOT real Citus)'::text $$;
COMMENT ON FUNCTION pg_catalog.citus_version() IS 'patroni-citus stand-in (NOT Citus): Citus version string';

CREATE FUNCTION pg_catalog.citus_add_node(
    nodename text,
    nodeport integer,
    groupid integer DEFAULT -1,
    noderole pg_catalog.noderole DEFAULT 'primary',
    nodecluster name DEFAULT 'default')
    RETURNS integer
    LANGUAGE plpgsql STRICT
    AS $$
BEGIN
    PERFORM citus_internal.standin_ensure_superuser();
    PERFORM citus_internal.standin_ensure_coordinator();
    PERFORM citus_internal.standin_resync_due_workers();
    -- the coordinator joins without shards unless asked for later
    RETURN citus_internal.standin_add_node_metadata($1, $2, $3, $4, $5, $3 <> 0);
END;
$$;
COMMENT ON FUNCTION pg_catalog.citus_add_node(text, integer, integer, pg_catalog.noderole, name)
    IS 'patroni-citus stand-in (NOT Citus): add node to the cluster';
REVOKE ALL ON FUNCTION pg_catalog.citus_add_node(text, integer, integer, pg_catalog.noderole, name) FROM PUBLIC;

CREATE FUNCTION pg_catalog.citus_update_node(
    node_id integer,
    new_node_name text,
    new_node_port integer,
    force boolean DEFAULT false,
    lock_cooldown integer DEFAULT 10000)
    RETURNS void
    LANGUAGE plpgsql STRICT
    AS $$
DECLARE
    holder_nodeid integer;
BEGIN
    PERFORM citus_internal.standin_resync_due_workers();
    -- Real Citus checks the address before the id and allows the call on any node.
    SELECT n.nodeid INTO holder_nodeid FROM pg_catalog.pg_dist_node n
    WHERE n.nodename = new_node_name AND n.nodeport = new_node_port;
    IF FOUND THEN
        IF holder_nodeid = node_id THEN
            RETURN;
        END IF;
        RAISE EXCEPTION 'there is already another node with the specified hostname and port'
            USING ERRCODE = '55000';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node n WHERE n.nodeid = node_id) THEN
        -- Citus formats the id as unsigned
        RAISE EXCEPTION 'node % not found', CASE WHEN node_id < 0 THEN node_id::bigint + 4294967296 ELSE node_id END
            USING ERRCODE = 'P0002';
    END IF;

    LOCK TABLE pg_catalog.pg_dist_node IN EXCLUSIVE MODE;
    UPDATE pg_catalog.pg_dist_node SET nodename = new_node_name, nodeport = new_node_port
    WHERE nodeid = node_id;
    -- Every metadata worker now holds a stale copy (whichever row moved, even the coordinator's)
    -- until the maintenance daemon resyncs it: see standin_resync_due_workers().
    WITH stale AS (
        UPDATE pg_catalog.pg_dist_node SET metadatasynced = false
        WHERE hasmetadata AND metadatasynced AND groupid > 0
        RETURNING nodeid
    )
    INSERT INTO citus_internal.standin_unsynced (nodeid)
    SELECT stale.nodeid FROM stale
    ON CONFLICT (nodeid) DO UPDATE SET unsynced_at = EXCLUDED.unsynced_at, unsynced_by = EXCLUDED.unsynced_by;
END;
$$;
COMMENT ON FUNCTION pg_catalog.citus_update_node(integer, text, integer, boolean, integer)
    IS 'patroni-citus stand-in (NOT Citus): change the location of a node (force and lock_cooldown are ignored)';
REVOKE ALL ON FUNCTION pg_catalog.citus_update_node(integer, text, integer, boolean, integer) FROM PUBLIC;

CREATE FUNCTION pg_catalog.citus_set_coordinator_host(
    host text,
    port integer DEFAULT current_setting('port')::integer,
    node_role pg_catalog.noderole DEFAULT 'primary',
    node_cluster name DEFAULT 'default')
    RETURNS void
    LANGUAGE plpgsql STRICT
    AS $$
DECLARE
    coordinator_nodeid integer;
BEGIN
    PERFORM citus_internal.standin_ensure_coordinator();
    PERFORM citus_internal.standin_resync_due_workers();
    LOCK TABLE pg_catalog.pg_dist_node IN EXCLUSIVE MODE;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node n WHERE n.groupid = 0) THEN
        PERFORM citus_internal.standin_add_node_metadata(host, port, 0, node_role, node_cluster, false);
        RETURN;
    END IF;
    -- Only the location moves; a host:port taken by another row fails on the unique constraint,
    -- as it does in Citus. The change is then sent to the workers, so they must be in sync.
    SELECT n.nodeid INTO coordinator_nodeid FROM pg_catalog.pg_dist_node n
    WHERE n.groupid = 0 AND n.noderole = 'primary';
    UPDATE pg_catalog.pg_dist_node SET nodename = host, nodeport = port WHERE nodeid = coordinator_nodeid;
    PERFORM citus_internal.standin_ensure_metadata_nodes_synced();
END;
$$;
COMMENT ON FUNCTION pg_catalog.citus_set_coordinator_host(text, integer, pg_catalog.noderole, name)
    IS 'patroni-citus stand-in (NOT Citus): set the host and port of the coordinator';
REVOKE ALL ON FUNCTION pg_catalog.citus_set_coordinator_host(text, integer, pg_catalog.noderole, name) FROM PUBLIC;

CREATE FUNCTION pg_catalog.citus_set_node_property(
    nodename text,
    nodeport integer,
    property text,
    value boolean)
    RETURNS void
    LANGUAGE plpgsql STRICT
    AS $$
DECLARE
    target_node pg_catalog.pg_dist_node;
BEGIN
    target_node := citus_internal.standin_modifiable_node($1, $2);
    IF $3 <> 'shouldhaveshards' THEN
        RAISE EXCEPTION 'only the ''shouldhaveshards'' property can be set using this function'
            USING ERRCODE = 'XX000';
    END IF;
    UPDATE pg_catalog.pg_dist_node n SET shouldhaveshards = $4 WHERE n.nodeid = target_node.nodeid;
    PERFORM citus_internal.standin_ensure_metadata_nodes_synced();
END;
$$;
COMMENT ON FUNCTION pg_catalog.citus_set_node_property(text, integer, text, boolean)
    IS 'patroni-citus stand-in (NOT Citus): set a property of a node in pg_dist_node';
REVOKE ALL ON FUNCTION pg_catalog.citus_set_node_property(text, integer, text, boolean) FROM PUBLIC;

CREATE FUNCTION pg_catalog.citus_remove_node(nodename text, nodeport integer)
    RETURNS void
    LANGUAGE plpgsql STRICT
    AS $$
DECLARE
    target_node pg_catalog.pg_dist_node;
BEGIN
    target_node := citus_internal.standin_modifiable_node($1, $2);
    DELETE FROM pg_catalog.pg_dist_node n WHERE n.nodeid = target_node.nodeid;
    PERFORM citus_internal.standin_ensure_metadata_nodes_synced();
END;
$$;
COMMENT ON FUNCTION pg_catalog.citus_remove_node(text, integer)
    IS 'patroni-citus stand-in (NOT Citus): remove node from the cluster';
REVOKE ALL ON FUNCTION pg_catalog.citus_remove_node(text, integer) FROM PUBLIC;

CREATE FUNCTION pg_catalog.citus_get_active_worker_nodes(OUT node_name text, OUT node_port bigint)
    RETURNS SETOF record
    LANGUAGE sql STABLE STRICT
    AS $$
    -- active primaries outside the coordinator group (citus.use_secondary_nodes = 'never')
    SELECT n.nodename, n.nodeport::bigint FROM pg_catalog.pg_dist_node n
    WHERE n.isactive AND n.groupid <> 0 AND n.noderole = 'primary' AND n.nodecluster = 'default'
    ORDER BY n.nodename, n.nodeport
    $$;
COMMENT ON FUNCTION pg_catalog.citus_get_active_worker_nodes()
    IS 'patroni-citus stand-in (NOT Citus): fetch set of active worker nodes';

CREATE FUNCTION pg_catalog.create_distributed_table(
    table_name regclass,
    distribution_column text,
    distribution_type citus.distribution_type DEFAULT 'hash',
    colocate_with text DEFAULT 'default',
    shard_count integer DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
    relation_name text;
    placement_node_count integer;
BEGIN
    IF table_name IS NULL OR colocate_with IS NULL THEN
        RETURN;
    END IF;
    IF distribution_column IS NULL THEN
        RAISE EXCEPTION 'the patroni-citus stand-in (NOT Citus) does not model single-shard tables'
            USING ERRCODE = '0A000', HINT = 'Pass a distribution column, or test against real Citus.';
    END IF;
    IF distribution_type IS NULL THEN
        RETURN;
    END IF;
    IF shard_count IS NOT NULL AND lower(colocate_with) NOT IN ('default', 'none') THEN
        RAISE EXCEPTION 'Cannot use colocate_with with a table and shard_count at the same time'
            USING ERRCODE = 'XX000';
    END IF;
    IF coalesce(shard_count, 32) NOT BETWEEN 1 AND 64000 THEN
        RAISE EXCEPTION '% is outside the valid range for parameter "shard_count" (1 .. 64000)', shard_count
            USING ERRCODE = 'XX000';
    END IF;

    PERFORM citus_internal.standin_ensure_coordinator();
    PERFORM citus_internal.standin_resync_due_workers();
    SELECT c.relname INTO relation_name FROM pg_catalog.pg_class c WHERE c.oid = table_name;

    -- Like Citus, a fresh single node gets a placeholder coordinator row that takes shards.
    LOCK TABLE pg_catalog.pg_dist_node IN ROW EXCLUSIVE MODE;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node) THEN
        PERFORM citus_internal.standin_add_node_metadata(
            'localhost', current_setting('port')::integer, 0, 'primary', 'default', true);
    END IF;

    IF NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = table_name AND a.attname = distribution_column AND NOT a.attisdropped
    ) THEN
        RAISE EXCEPTION 'column "%" of relation "%" does not exist', distribution_column, relation_name
            USING ERRCODE = '42703';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = table_name) THEN
        RAISE EXCEPTION 'table "%" is already distributed', relation_name USING ERRCODE = '42P16';
    END IF;

    -- Hash tables get their shards now, on active primaries that should have shards.
    IF distribution_type = 'hash' THEN
        SELECT count(*) INTO placement_node_count FROM pg_catalog.pg_dist_node n
        WHERE n.isactive AND n.noderole = 'primary' AND n.shouldhaveshards;
        IF placement_node_count < 1 THEN
            RAISE EXCEPTION 'replication_factor (1) exceeds number of worker nodes (%)', placement_node_count
                USING ERRCODE = '22023',
                      HINT = 'Add more worker nodes or try again with a lower replication factor.';
        END IF;
    END IF;

    -- the new table's metadata goes to every metadata worker (from the source; not probed)
    PERFORM citus_internal.standin_ensure_metadata_nodes_synced();
    INSERT INTO pg_catalog.pg_dist_partition (logicalrelid, partmethod, partkey, colocationid, repmodel)
    VALUES (
        table_name,
        CASE distribution_type WHEN 'hash' THEN 'h' WHEN 'range' THEN 'r' ELSE 'a' END,
        distribution_column,
        0,
        CASE distribution_type WHEN 'hash' THEN 's' ELSE 'c' END);
END;
$$;
COMMENT ON FUNCTION pg_catalog.create_distributed_table(regclass, text, citus.distribution_type, text, integer)
    IS 'patroni-citus stand-in (NOT Citus): records a distributed table; its data stays local';

-- Not in Citus: the stand-in's model of the maintenance daemon's metadata sync, run by the
-- background worker of citus.so about once a second. Like Citus's SyncNodeMetadataToNodesOptional
-- it only acts on the coordinator and never waits for a lock on pg_dist_node.
CREATE FUNCTION pg_catalog.citus_standin_resync_stale() RETURNS integer
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF (SELECT groupid FROM pg_catalog.pg_dist_local_group) IS DISTINCT FROM 0 THEN
        RETURN 0;
    END IF;
    PERFORM pg_catalog.set_config('lock_timeout', '1s', true);
    LOCK TABLE pg_catalog.pg_dist_node IN ROW EXCLUSIVE MODE NOWAIT;
    RETURN citus_internal.standin_resync_due_workers();
EXCEPTION WHEN lock_not_available THEN
    RETURN 0;  -- somebody is changing pg_dist_node: try again next time, as Citus does
END;
$$;
COMMENT ON FUNCTION pg_catalog.citus_standin_resync_stale()
    IS 'patroni-citus stand-in only (NOT in Citus): model the maintenance daemon resyncing workers unsynced at least 1 s ago';
REVOKE ALL ON FUNCTION pg_catalog.citus_standin_resync_stale() FROM PUBLIC;

-- Not in Citus: what Citus's maintenance daemon does a few seconds after citus_update_node.
CREATE FUNCTION pg_catalog.citus_standin_mark_synced() RETURNS integer
    LANGUAGE plpgsql
    AS $$
DECLARE
    resynced integer;
BEGIN
    UPDATE pg_catalog.pg_dist_node SET metadatasynced = true
    WHERE hasmetadata AND NOT coalesce(metadatasynced, false) AND isactive AND noderole = 'primary';
    GET DIAGNOSTICS resynced = ROW_COUNT;
    DELETE FROM citus_internal.standin_unsynced;
    RETURN resynced;
END;
$$;
COMMENT ON FUNCTION pg_catalog.citus_standin_mark_synced()
    IS 'patroni-citus stand-in only (NOT in Citus): model the maintenance daemon resyncing worker metadata';
REVOKE ALL ON FUNCTION pg_catalog.citus_standin_mark_synced() FROM PUBLIC;
