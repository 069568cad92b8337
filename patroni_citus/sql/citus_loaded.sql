-- Citus must be loaded through shared_preload_libraries before CREATE EXTENSION can work.
SELECT 'citus' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
