#!/usr/bin/env bash
# Build an offline installation bundle of roadwatch for a network without internet:
#
#   config/deploy/make-bundle.sh [--out roadwatch-bundle-VERSION.tar.gz] [--dry-run]
#
# Run it on a machine WITH access to PyPI (or a mirror), of the same platform as the
# target (Debian 12 x86_64, CPython 3.11: the wheels of shapely, pyproj, psycopg-binary…
# are platform-specific). The tarball holds:
#   wheels/           roadwatch's wheel and a wheel of every pinned dependency
#                     (requirements.lock when present, else pyproject.toml's dependencies)
#   requirements.txt  what to install (the lock, or roadwatch's own wheel name)
#   config/deploy/    systemd units, nginx site, Mosquitto configuration, env example…
#   docs/             deploy.md, scale.md, security.md, …
#   INSTALL.txt       the offline install commands (docs/deploy.md, "Offline installation")
# The front end's vendored assets (MapLibre, MQTT.js…) are committed under
# roadwatch/web/static/vendor and travel inside roadwatch's wheel: nothing is fetched
# from a CDN at run time, nor npm at install time.
#
# On the target:  tar xzf roadwatch-bundle-*.tar.gz && cd roadwatch-bundle-*/
#                 python3 -m venv /opt/roadwatch/venv
#                 /opt/roadwatch/venv/bin/pip install --no-index --find-links wheels -r requirements.txt
#
# --dry-run prints the commands and writes nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
VERSION=$("$PY" -c 'import tomllib;print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')
OUT="roadwatch-bundle-$VERSION.tar.gz"
DRY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "make-bundle.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

NAME="roadwatch-bundle-$VERSION"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/$NAME"

run() {
  echo "+ $*"
  if [ "$DRY" = 0 ]; then "$@"; fi
}

if [ -f requirements.lock ]; then
  REQS=requirements.lock
else
  REQS="$WORK/requirements-from-pyproject.txt"
  "$PY" -c 'import tomllib;print("\n".join(tomllib.load(open("pyproject.toml","rb"))["project"]["dependencies"]))' > "$REQS"
  echo "make-bundle.sh: no requirements.lock: taking pyproject.toml's dependencies (not pinned)" >&2
fi

run mkdir -p "$STAGE/wheels"
# roadwatch itself (without its dependencies: they come next, pinned).
run "$PY" -m pip wheel --no-deps --wheel-dir "$STAGE/wheels" .
# Every dependency as a wheel (a package published only as an sdist is built into a wheel
# here, so the target needs no compiler and no internet).
run "$PY" -m pip wheel --wheel-dir "$STAGE/wheels" -r "$REQS"
run cp "$REQS" "$STAGE/requirements.txt"
if [ "$DRY" = 0 ]; then
  # The install must name roadwatch too; its wheel is in wheels/.
  echo "roadwatch==$VERSION" >> "$STAGE/requirements.txt"
else
  echo "+ echo roadwatch==$VERSION >> $STAGE/requirements.txt"
fi
run mkdir -p "$STAGE/config"
run cp -r config/deploy "$STAGE/config/deploy"
run cp -r docs "$STAGE/docs"
if [ "$DRY" = 0 ]; then
  cat > "$STAGE/INSTALL.txt" <<TXT
roadwatch $VERSION offline bundle. See docs/deploy.md. In short, as root:
  python3 -m venv /opt/roadwatch/venv
  /opt/roadwatch/venv/bin/pip install --no-index --find-links wheels -r requirements.txt
  /opt/roadwatch/venv/bin/roadwatch --help
TXT
fi
echo "+ (pip install --no-index --find-links wheels -r requirements.txt: see INSTALL.txt)"
run tar -C "$WORK" -czf "$OUT" "$NAME"
echo "bundle: $OUT"
