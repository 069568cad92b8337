-- Every row of the coordinator's node metadata, in a stable order.
SELECT nodeid, groupid, nodename, nodeport, noderole::text, isactive, hasmetadata,
       coalesce(metadatasynced, false), shouldhaveshards
FROM pg_catalog.pg_dist_node
ORDER BY groupid, nodeid
