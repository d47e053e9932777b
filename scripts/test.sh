#!/usr/bin/env bash
# The whole suite, as CI runs it: lint, types, migrations check, deploy check, pytest (real
# PostgreSQL + pgvector, Valkey, Celery workers, Chromium) and gateway-node's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
PY=$VENV/bin/python
started=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - started ))s)"; }

export DEBUG=0
export SECRET_KEY=${SECRET_KEY:-test-only-secret-key-not-for-production-0123456789}
export LOG_LEVEL=${LOG_LEVEL:-warning}
# Persistent connections would outlive test threads and block dropping the test database.
export DATABASE_CONN_MAX_AGE=0
export EVA_BASE_DOMAIN=localhost
unset EVA_HTTPS

step "embedded services (only for what DATABASE_URL / REDIS_URL do not name)"
embedded=$($PY -m eva.embedded env)
if [ -z "${DATABASE_URL:-}" ]; then
  export DATABASE_URL=$(grep '^DATABASE_URL=' <<<"$embedded" | cut -d= -f2-)
fi
if [ -z "${REDIS_URL:-}" ]; then
  # Database 1 keeps test queues and keys apart from a `make run` on the same machine.
  export REDIS_URL=$(grep '^REDIS_URL=' <<<"$embedded" | cut -d= -f2- | sed 's#/0$#/1#')
fi
echo "DATABASE_URL=${DATABASE_URL%%@*}@…  REDIS_URL=$REDIS_URL"
mkdir -p .eva

if [ -z "${EVA_TEST_S3_ENDPOINT:-}" ]; then
  # An S3-compatible server for the media-in-a-bucket tests of both languages (rclone serve s3:
  # the real S3 protocol with signature v4; rclone comes with the dev dependencies).
  step "S3-compatible server for the media storage tests"
  s3_port=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  s3_root=$(mktemp -d)
  export EVA_TEST_S3_ENDPOINT=http://127.0.0.1:$s3_port
  export EVA_TEST_S3_ACCESS_KEY=eva-test EVA_TEST_S3_SECRET_KEY=eva-test-secret
  $VENV/bin/rclone serve s3 --auth-key "$EVA_TEST_S3_ACCESS_KEY,$EVA_TEST_S3_SECRET_KEY" \
    --addr "127.0.0.1:$s3_port" "$s3_root" >.eva/test-s3.log 2>&1 &
  s3_pid=$!
  trap 'kill $s3_pid 2>/dev/null; rm -rf "$s3_root"' EXIT
  # Answering at all (403 to an unsigned request) is enough.
  s3_answers() { $PY -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$s3_port" 2>/dev/null; }
  for _ in $(seq 100); do
    s3_answers && break
    kill -0 $s3_pid 2>/dev/null || { cat .eva/test-s3.log >&2; echo "rclone serve s3 exited" >&2; exit 1; }
    sleep 0.1
  done
  s3_answers || { echo "rclone serve s3 does not answer on port $s3_port" >&2; exit 1; }
  echo "EVA_TEST_S3_ENDPOINT=$EVA_TEST_S3_ENDPOINT"
fi

step "ruff"
$VENV/bin/ruff check .
$VENV/bin/ruff format --check .

step "mypy"
$VENV/bin/mypy

step "migrations are complete"
$PY manage.py makemigrations --check --dry-run

step "deploy check with production-like settings"
DEBUG=0 EVA_HTTPS=1 EVA_BASE_DOMAIN=eva.example.com \
  SECRET_KEY=ci-check-deploy-secret-key-0123456789abcdefghijklmnop \
  $PY manage.py check --deploy --fail-level WARNING

step "collectstatic"
$PY manage.py collectstatic --noinput --verbosity 0

if [ -f gateway-node/package.json ]; then
  # Installed before pytest too: the cross-language end-to-end test runs the real gateway.
  step "gateway-node dependencies"
  (cd gateway-node && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

step "pytest"
set +e
$VENV/bin/pytest "$@"
status=$?
set -e
if [ $status -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
[ $status -eq 0 ] || exit $status

if [ -f gateway-node/package.json ]; then
  step "gateway-node"
  # A test file whose process never exits (a connection left open) would hang CI: bounded.
  set +e
  (cd gateway-node && timeout --kill-after=10 300 npm test)
  status=$?
  set -e
  if [ $status -eq 124 ] || [ $status -eq 137 ]; then
    echo "gateway-node tests did not finish within 300 s (a test process left a handle open?)" >&2
  fi
  [ $status -eq 0 ] || exit $status
fi

step "done"
