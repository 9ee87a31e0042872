-- Shopflow's PostgreSQL roles, databases and grants: each container logs in with the least
-- it needs, and none but the postgres container itself knows the superuser's password.
--
--   airflow_role   owns airflow_db: Airflow's metadata and the Celery result backend.
--   pipeline_role  owns shopflow_db (warehouse schemas + model ledger) and feast_db (Feast's
--                  SQL registry): the Airflow tasks and the shopflow CLI.
--   serve_role     the public model server: reads the ledger, may append its own events
--                  (a refused model is a `rejection` row) and reads Feast's registry; it
--                  cannot update, delete or drop anything, nor read the warehouse.
--
-- A psql script (variables: the names above plus airflow_password, pipeline_password and
-- serve_password), run once on an empty data volume by docker/postgres/init.sh;
-- tests/integration/test_postgres_roles.py runs this same file with throwaway names.
\set ON_ERROR_STOP on

CREATE ROLE :"airflow_role" LOGIN PASSWORD :'airflow_password';
CREATE ROLE :"pipeline_role" LOGIN PASSWORD :'pipeline_password';
CREATE ROLE :"serve_role" LOGIN PASSWORD :'serve_password';

CREATE DATABASE :"airflow_db" OWNER :"airflow_role";
CREATE DATABASE :"shopflow_db" OWNER :"pipeline_role";
CREATE DATABASE :"feast_db" OWNER :"pipeline_role";
-- by default every role may connect to every database: only the owners, and the server
REVOKE ALL ON DATABASE :"airflow_db" FROM PUBLIC;
REVOKE ALL ON DATABASE :"shopflow_db" FROM PUBLIC;
REVOKE ALL ON DATABASE :"feast_db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"shopflow_db" TO :"serve_role";
GRANT CONNECT ON DATABASE :"feast_db" TO :"serve_role";

-- The ledger: created now, owned by the pipeline (which adds columns as the code grows);
-- the server reads it and appends events, nothing else.
\connect :"shopflow_db"
SET ROLE :"pipeline_role";
\ir ledger.sql
INSERT INTO shopflow_aliases (alias) VALUES ('production');
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"serve_role";
GRANT SELECT ON shopflow_candidates, shopflow_events, shopflow_aliases TO :"serve_role";
GRANT INSERT ON shopflow_events TO :"serve_role";
GRANT USAGE ON SEQUENCE shopflow_events_id_seq TO :"serve_role";
RESET ROLE;

-- Feast's registry: its tables appear at the pipeline's first `feast apply`; the server
-- may read every table the pipeline creates there, and write none.
\connect :"feast_db"
SET ROLE :"pipeline_role";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"serve_role";
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO :"serve_role";
RESET ROLE;
