#!/usr/bin/env bash
# Install roadwatch into ./.venv (first run, or when pyproject.toml changes) and start it:
# web + live map on http://127.0.0.1:5000/, MQTT ingest (embedded broker if none listens
# on 127.0.0.1:1883), a SQLite file under ./var/, the bundled demo network, and simulated
# road chiefs. Extra arguments go to `roadwatch serve` (e.g. --port 8000).
# On the first start of a new database it first plays weeks of demo history
# (`roadwatch demo seed`, ROADWATCH_DEMO_WEEKS, default 8; 0 skips it), then goes live.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
# The exact versions the tests ran with (requirements.lock, refreshed by .ci/lock), then the
# project itself, editable, with nothing more resolved.
if [ ! -x .venv/bin/roadwatch ] || [ pyproject.toml -nt .venv/.installed ] \
  || [ requirements.lock -nt .venv/.installed ]; then
  echo "run.sh: installing roadwatch into .venv (once; a minute or two)..." >&2
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q -r requirements.lock
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  touch .venv/.installed
fi
if [ "${ROADWATCH_DEMO_WEEKS:-8}" != "0" ]; then
  # --if-new: nothing to do on a database seeded before; a database with real data is
  # refused with one line and left as it is, and the platform starts on it anyway.
  .venv/bin/roadwatch demo seed --if-new --weeks "${ROADWATCH_DEMO_WEEKS:-8}" \
    --seed "${ROADWATCH_DEMO_SEED:-1}" ||
    echo "run.sh: no demo history added (see the line above); starting the platform" >&2
fi
exec .venv/bin/roadwatch serve --simulate "${ROADWATCH_SIM_CHIEFS:-40}" \
  --rate "${ROADWATCH_SIM_RATE:-4}" "$@"
