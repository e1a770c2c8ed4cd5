-- The raw API object of an instance is about 2 kB of JSON, so nearly every row of
-- ecp.instances is past the size at which Postgres compresses it. The default
-- method, pglz, cost more CPU than parsing the row; lz4 compresses about as well
-- at a fraction of the cost. Only values written from now on use it; old ones
-- stay readable as they are.
-- A server built without lz4 support keeps pglz: slower writes, same data.
DO $$
BEGIN
    ALTER TABLE ecp.instances ALTER COLUMN raw SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available on this server; ecp.instances.raw keeps pglz';
END
$$;
