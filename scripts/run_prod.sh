#!/usr/bin/env bash
# `make run-prod`: the production processes of Procfile.prod (gunicorn, a Celery worker per group of queues,
# beat, the LISTENing relay) with honcho, on this machine's PostgreSQL and Redis, with the production
# settings and a secret generated once into var/prod-local.env (never committed: var/ is ignored).
#
#   scripts/run_prod.sh                  create the database if missing, migrate, collectstatic, load the
#                                        catalogue, start everything, print the URLs once all answer
#   scripts/run_prod.sh manage ARGS...   a manage.py command in the same environment (createsuperuser...)
#
# Where it runs can be changed with the usual variables: PORT (8000), DATABASE_URL
# (postgres://postgres@127.0.0.1:5432/oms_prod_local), CELERY_BROKER_URL and CACHE_URL (Redis databases 11
# and 12 on 127.0.0.1:6379), VAR_DIR (var/prod); RUN_PROD_ENV_FILE names the secrets' file.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="${BIN:-$ROOT/.venv/bin}:$PATH"

export DJANGO_SETTINGS_MODULE=config.settings.production
export PORT=${PORT:-8000}
export VAR_DIR=${VAR_DIR:-$ROOT/var/prod}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/oms_prod_local}
export CELERY_BROKER_URL=${CELERY_BROKER_URL:-redis://127.0.0.1:6379/11}
export CACHE_URL=${CACHE_URL:-redis://127.0.0.1:6379/12}
export ALLOWED_HOSTS=${ALLOWED_HOSTS:-127.0.0.1,localhost,[::1]}
export SHOP_BASE_URL=${SHOP_BASE_URL:-http://127.0.0.1:$PORT}  # the links in customer mail
# A demo on loopback, said so through the settings production reads, its defaults unchanged:
# the sandbox gateway and carrier (no real orders here), no TLS to redirect to, mail printed by the
# fulfilment worker rather than sent to an SMTP server this machine does not have.
export ALLOW_SANDBOX_PROVIDERS=${ALLOW_SANDBOX_PROVIDERS:-true}
export SECURE_SSL_REDIRECT=${SECURE_SSL_REDIRECT:-false}
export EMAIL_URL=${EMAIL_URL:-consolemail://}
# The relay process LISTENs for commits, so commits need not kick a relay task (docs/operations.md).
export OUTBOX_KICK_ON_COMMIT=${OUTBOX_KICK_ON_COMMIT:-false}
# One metrics folder for the processes of this host, emptied before they start.
export PROMETHEUS_MULTIPROC_DIR=$VAR_DIR/prometheus
export PYTHONUNBUFFERED=1

# The secrets, generated on the first run and kept: SECRET_KEY signs sessions, METRICS_TOKEN guards /metrics.
ENV_FILE=${RUN_PROD_ENV_FILE:-$ROOT/var/prod-local.env}
if [ ! -f "$ENV_FILE" ]; then
  mkdir -p "$(dirname "$ENV_FILE")"
  (umask 077 && python -c 'import secrets
print(f"SECRET_KEY={secrets.token_urlsafe(50)}")
print(f"METRICS_TOKEN={secrets.token_urlsafe(32)}")' >"$ENV_FILE")
  echo "run-prod: generated SECRET_KEY and METRICS_TOKEN into $ENV_FILE (never commit it)"
fi
set -a
# shellcheck source=/dev/null
. "$ENV_FILE"
set +a

if [ "${1:-}" = manage ]; then
  shift
  exec python manage.py "$@"
fi

if [ -z "${WEB_BIND:-}" ] && ! python -c 'import socket, sys
with socket.socket() as s:
    s.bind(("127.0.0.1", int(sys.argv[1])))' "$PORT" 2>/dev/null; then
  echo "run-prod: port $PORT is in use (another make run or run-prod?); pick another: make run-prod PORT=8001" >&2
  exit 2
fi

python scripts/run_prod_database.py
python manage.py migrate --noinput
python manage.py collectstatic --noinput --verbosity 0
# The demo catalogue through the inventory's services (idempotent; no user, unlike seed_demo).
python manage.py shell --verbosity 0 -c "from inventory.demo import seed_catalogue; seed_catalogue()"
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

# honcho reads only our env file (not .env, whose values it would put above the ones exported here).
honcho start -f Procfile.prod -e "$ENV_FILE" -p "$PORT" &
honcho_pid=$!
trap 'kill -TERM "$honcho_pid" 2>/dev/null || true' INT TERM
ready=true
if python scripts/run_prod_ready.py "$honcho_pid"; then
  db=${DATABASE_URL##*/}
  cat <<BANNER

  run-prod: up (production settings; database ${db%%\?*}, broker $CELERY_BROKER_URL)
  Shop:        http://127.0.0.1:$PORT/
  Admin:       http://127.0.0.1:$PORT/admin/   (a user: scripts/run_prod.sh manage createsuperuser)
  API schema:  http://127.0.0.1:$PORT/api/schema/  (docs: /api/docs/)
  Health:      http://127.0.0.1:$PORT/healthz
  Metrics:     http://127.0.0.1:$PORT/metrics  (Authorization: Bearer <METRICS_TOKEN of $ENV_FILE>)
  Ctrl-C stops every process.

BANNER
else
  ready=false
  kill -TERM "$honcho_pid" 2>/dev/null || true
fi
status=0
wait "$honcho_pid" || status=$?
while kill -0 "$honcho_pid" 2>/dev/null; do  # a signal ends `wait` early: wait for honcho to stop its processes
  wait "$honcho_pid" || status=$?
done
$ready || exit 1
exit "$status"
