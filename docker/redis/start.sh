#!/bin/sh
# Start Redis with Shopflow's ACL users (docker/redis/users.acl.template, ${NAME} filled in
# from the environment, i.e. .env): no default user, and
#
#   REDIS_FEAST_USER   the pipeline's Feast online store: read and write Feast's keys only
#                      (a Feast key is the serialized entity key followed by the project)
#   REDIS_SERVE_USER   the model server: read Feast's keys only, write nothing
#   REDIS_CELERY_USER  Airflow's Celery broker (db 1): kombu's keys and channels, which
#                      include per-worker reply queues, so not confined by key pattern
#
# No user may run the dangerous commands (FLUSHALL, KEYS, CONFIG, DEBUG, ACL, ...).
# `start.sh --render` only prints the rendered ACL (tests/integration/test_redis_acl.py).
set -eu

render() {
  grep -v '^#' "$(dirname "$0")/users.acl.template" | awk '{
    line = $0
    while (match(line, /\$\{[A-Z_]+\}/)) {
      name = substr(line, RSTART + 2, RLENGTH - 3)
      if (!(name in ENVIRON) || ENVIRON[name] == "") {
        print "users.acl.template: " name " is not set" > "/dev/stderr"; exit 1
      }
      line = substr(line, 1, RSTART - 1) ENVIRON[name] substr(line, RSTART + RLENGTH)
    }
    print line
  }'
}

if [ "${1:-}" = "--render" ]; then
  render
  exit 0
fi
acl="${REDIS_ACL_FILE:-/tmp/shopflow-users.acl}"
umask 077
render > "$acl"
exec redis-server --aclfile "$acl" "$@"
