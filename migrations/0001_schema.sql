-- The one schema that holds everything analysts and BI tools read (see
-- docs: sql-interface). btree_gist lets an EXCLUDE constraint combine
-- "same instance" (equality) with "overlapping validity" (ranges) so the database
-- itself refuses two versions of one instance valid at the same instant.
CREATE SCHEMA IF NOT EXISTS ecp;
COMMENT ON SCHEMA ecp IS 'Elastic Cloud Phone inventory: current instances, their full history and the run ledger.';

CREATE EXTENSION IF NOT EXISTS btree_gist;
