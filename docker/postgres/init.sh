#!/usr/bin/env bash
# Runs once, on an empty data volume, as the superuser (/docker-entrypoint-initdb.d):
# Shopflow's roles, databases, ledger tables and grants (docker/postgres/roles.sql), with
# the passwords from .env. Changing a password later: ALTER ROLE ... PASSWORD, by hand.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER}" --dbname postgres \
  -v airflow_role=airflow -v airflow_password="${AIRFLOW_DB_PASSWORD:?}" \
  -v pipeline_role=shopflow -v pipeline_password="${SHOPFLOW_DB_PASSWORD:?}" \
  -v serve_role=shopflow_serve -v serve_password="${SHOPFLOW_SERVE_DB_PASSWORD:?}" \
  -v airflow_db=airflow -v shopflow_db=shopflow -v feast_db=feast \
  -f /opt/shopflow/postgres/roles.sql
