#!/usr/bin/env bash
# Runs once, on an empty data volume, as the superuser (/docker-entrypoint-initdb.d):
# Shopflow's roles, databases, ledger tables and grants (docker/postgres/roles.sql), with
# the passwords from .env. Changing a password later: ALTER ROLE ... PASSWORD, by hand.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER}" --dbname postgres \
  -v airflow_role=airflow -v airflow_password="${POSTGRES_AIRFLOW_PASSWORD:?}" \
  -v pipeline_role=shopflow -v pipeline_password="${POSTGRES_PIPELINE_PASSWORD:?}" \
  -v serve_role=shopflow_serve -v serve_password="${POSTGRES_SERVE_PASSWORD:?}" \
  -v airflow_db=airflow -v shopflow_db=shopflow -v feast_db=feast \
  -f /opt/shopflow/postgres/roles.sql
