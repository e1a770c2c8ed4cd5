-- A read-only role for analysts and BI tools (Metabase, Superset, Grafana): SELECT
-- on every table and view of the ecp schema, EXECUTE on its functions
-- (instances_as_of, run_diff), and nothing else. Idempotent: run it again after
-- upgrades; tables and views added later by the job's migrations are covered by
-- the default privileges below.
--
-- Run it in the inventory database, after the job's first migration, as a role
-- that may create roles (a superuser, or one with CREATEROLE that is a member of
-- the role the job migrates with, the owner of the ecp schema):
--
--   psql "postgres://admin@db:5432/ecp" -v ON_ERROR_STOP=1 -f deploy/readonly_role.sql
--
-- then give each person or tool a login that inherits it:
--
--   CREATE ROLE metabase LOGIN PASSWORD 'change-me' IN ROLE ecp_readonly;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ecp_readonly') THEN
        CREATE ROLE ecp_readonly NOLOGIN;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO ecp_readonly', current_database());
END $$;

GRANT USAGE ON SCHEMA ecp TO ecp_readonly;
GRANT SELECT ON ALL TABLES IN SCHEMA ecp TO ecp_readonly;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA ecp TO ecp_readonly;

-- Objects the migrating role creates later. Default privileges belong to the
-- role that creates the objects, not to the one running this script: they are
-- set for the owner of the ecp schema, the role the job migrates with.
DO $$
DECLARE owner text := (SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'ecp');
BEGIN
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %s IN SCHEMA ecp '
                   'GRANT SELECT ON TABLES TO ecp_readonly', owner);
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %s IN SCHEMA ecp '
                   'GRANT EXECUTE ON FUNCTIONS TO ecp_readonly', owner);
END $$;
