# Shared helpers for deploy/scripts/*.sh (sourced, not executed).
# shellcheck shell=bash

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL_DIR="${LOCAL_DIR:-$ROOT_DIR/.local}"
VENV_DIR="${VENV_DIR:-$ROOT_DIR/.venv}"
PYTHON="${PYTHON:-$VENV_DIR/bin/python}"

log() { printf '[%s] %s\n' "$(basename "$0" .sh)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# pid_alive PIDFILE: true when the file names a live process.
pid_alive() {
  local pidfile="$1" pid
  [[ -s "$pidfile" ]] || return 1
  pid="$(cat "$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null
}

# stop_pidfile NAME PIDFILE [TIMEOUT]: SIGTERM, wait, SIGKILL after TIMEOUT s.
stop_pidfile() {
  local name="$1" pidfile="$2" timeout="${3:-30}" pid i
  if ! pid_alive "$pidfile"; then
    log "$name not running"
    rm -f "$pidfile"
    return 0
  fi
  pid="$(cat "$pidfile")"
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 5; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name did not stop within ${timeout}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$pidfile"
}

# port_open HOST PORT: true when something accepts TCP connections.
port_open() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

require_venv() {
  [[ -x "$PYTHON" ]] || die "python venv missing at $VENV_DIR (run: make venv)"
}
