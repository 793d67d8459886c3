#!/usr/bin/env bash
# Create or refresh the project virtualenv (.venv) with the dev extras.
#   deploy/scripts/venv.sh            (called by `make venv` when pyproject.toml changed)
set -euo pipefail
# shellcheck source=deploy/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

BASE_PYTHON="${BASE_PYTHON:-python3.11}"
command -v "$BASE_PYTHON" >/dev/null || BASE_PYTHON=python3

ensure_python() {
  if command -v "$BASE_PYTHON" >/dev/null && "$BASE_PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    return 0
  fi
  [[ "$(id -u)" == 0 ]] || die "python3 with venv support is missing (apt-get install -y python3 python3-venv)"
  log "installing python3-venv with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends python3 python3-venv python3-pip
  BASE_PYTHON=python3
}

if [[ ! -x "$VENV_DIR/bin/python" ]] || ! "$VENV_DIR/bin/python" -c 'import sys' 2>/dev/null; then
  ensure_python
  log "creating virtualenv in $VENV_DIR"
  rm -rf "$VENV_DIR"
  "$BASE_PYTHON" -m venv "$VENV_DIR"
  "$VENV_DIR/bin/python" -m pip install -q --upgrade pip
fi
log "installing project with dev extras"
(cd "$ROOT_DIR" && "$VENV_DIR/bin/python" -m pip install -q -e '.[dev]')
