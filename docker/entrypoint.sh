#!/usr/bin/env bash
# Container entrypoint: prepare what a role needs from secrets, then run the command.
set -euo pipefail

# Airflow's simple auth manager reads user passwords from a JSON file; write it from the
# secret in .env so the admin password is never baked into the image.
if [[ -n "${AIRFLOW_ADMIN_PASSWORD:-}" ]]; then
  passwords_file="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:-${AIRFLOW_HOME}/passwords.json}"
  mkdir -p "$(dirname "${passwords_file}")"
  python - "${passwords_file}" <<'PY'
import json, os, sys
user = os.environ.get("AIRFLOW_ADMIN_USER", "admin")
with open(sys.argv[1], "w") as handle:
    json.dump({user: os.environ["AIRFLOW_ADMIN_PASSWORD"]}, handle)
PY
  chmod 0600 "${passwords_file}"
fi

mkdir -p "${SHOPFLOW_HOME:-/var/lib/shopflow}"
exec "$@"
