#!/usr/bin/env bash
# Run the whole test suite: installs what it needs (Python packages into ./.venv; as root
# also the Debian packages chromium, chromium-driver, mosquitto, fonts-noto-cjk and Pango), starts
# PostgreSQL / Redis / Mosquitto when they are installed but down, then runs pytest.
# Integration and browser tests are required here: a missing service is a failure.
# Arguments go to pytest (e.g. ./test.sh -k pipeline); ./test.sh --fast runs the fast tier only.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium chromium-driver)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
[ -d /usr/share/fonts/opentype/noto ] || need_apt+=(fonts-noto-cjk)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm) # the front end's type check and lint
# WeasyPrint (the rankings' PDF) needs Pango and HarfBuzz's subsetter.
for lib in libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0; do
  dpkg -s "$lib" >/dev/null 2>&1 || need_apt+=("$lib")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing ${need_apt[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "test.sh: missing system packages: ${need_apt[*]} (run as root or install them)" >&2
  fi
fi

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! up 5432 && command -v pg_ctlcluster >/dev/null 2>&1; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if ! up 6379 && command -v redis-server >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/roadwatch-ci-redis.log || true
fi
if ! up 1883 && [ -x /usr/sbin/mosquitto ]; then
  if [ -f /etc/mosquitto/mosquitto.conf ]; then
    /usr/sbin/mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
  else
    /usr/sbin/mosquitto -d -p 1883 || true
  fi
fi

# Python packages: exactly the versions of requirements.lock (refreshed by .ci/lock), then the
# project itself, editable, with nothing more resolved or downloaded.
if [ ! -x .venv/bin/pytest ] || [ requirements.lock -nt .venv/.installed-test ] \
  || [ pyproject.toml -nt .venv/.installed-test ]; then
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q -r requirements.lock
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  touch .venv/.installed-test
fi

# The front end's pinned tools (TypeScript, ESLint: frontend/package-lock.json).
if command -v npm >/dev/null 2>&1 && { [ ! -f frontend/node_modules/.package-lock.json ] \
    || [ frontend/package-lock.json -nt frontend/node_modules/.package-lock.json ]; }; then
  (cd frontend && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi

# --fast: the fast tier (no browser, nothing marked slow) on every core with pytest-xdist.
tier=()
if [ "${1:-}" = "--fast" ]; then
  shift
  tier=(-n auto -m "not browser and not slow")
fi

export ROADWATCH_REQUIRE_SERVICES=1
set +e
.venv/bin/python -m pytest ${tier[@]+"${tier[@]}"} "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "test.sh: pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$rc"
