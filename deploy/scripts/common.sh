# Shared helpers for deploy/scripts/*.sh (sourced, not executed).
# shellcheck shell=bash

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL_DIR="${LOCAL_DIR:-$ROOT_DIR/.local}"
VENV_DIR="${VENV_DIR:-$ROOT_DIR/.venv}"
PYTHON="${PYTHON:-$VENV_DIR/bin/python}"

log() { printf '[%s] %s\n' "$(basename "$0" .sh)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

PID_EXIT_TIMEOUT="${PID_EXIT_TIMEOUT:-30}"

# task_condition DIR: prints `zombie`, `exiting` or `live` for /proc/PID or /proc/PID/task/TID.
# Exiting: SIGKILL is pending (signal 9, bit 0x100 of SigPnd/ShdPnd) or the kernel is tearing
# the task down (PF_EXITING, 0x4 in the flags field of stat).
task_condition() {
  local dir="$1" stat state flags key value
  stat="$(cat "$dir/stat" 2>/dev/null)" || { echo zombie; return 0; }
  # Fields after "pid (comm) ", whose comm may hold spaces and parentheses:
  # state ppid pgrp session tty_nr tpgid flags ...
  stat="${stat##*) }"
  read -r state _ _ _ _ _ flags _ <<<"$stat"
  if [[ "$state" == [ZX] ]]; then
    echo zombie
    return 0
  fi
  if ((flags & 0x4)); then
    echo exiting
    return 0
  fi
  while IFS=$' \t' read -r key value; do
    if [[ "$key" == SigPnd: || "$key" == ShdPnd: ]] && ((0x$value & 0x100)); then
      echo exiting
      return 0
    fi
  done <"$dir/status" 2>/dev/null || true
  echo live
}

# pid_state PID [PATTERN]: prints `running`, `exiting` or `gone`.
#   gone     no such process; a zombie (dead, only waiting to be reaped by its parent); or,
#            with PATTERN, a live process whose command line does not contain it: the pid
#            was reused by another program, so the pid file is stale.
#   exiting  killed or tearing down (see task_condition), itself or, for a zombie thread
#            group leader, its last threads: it may still hold its ports and files a moment.
#   running  anything else.
pid_state() {
  local pid="$1" pattern="${2:-}" condition task cmdline
  if [[ ! -d /proc/self ]]; then # no procfs to look closer: liveness is all we can tell
    if kill -0 "$pid" 2>/dev/null; then echo running; else echo gone; fi
    return 0
  fi
  [[ -d /proc/$pid ]] || { echo gone; return 0; }
  condition="$(task_condition "/proc/$pid")"
  if [[ "$condition" == zombie ]]; then
    # The leader is gone; the process lives on while any other thread does.
    condition=gone
    for task in "/proc/$pid/task/"*; do
      [[ "$task" != "/proc/$pid/task/$pid" && -d "$task" ]] || continue
      case "$(task_condition "$task")" in
        live) condition=live && break ;;
        exiting) condition=exiting ;;
      esac
    done
  fi
  case "$condition" in
    gone | exiting) echo "$condition" && return 0 ;;
  esac
  if [[ -n "$pattern" ]]; then
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || { echo gone; return 0; }
    if [[ -z "$cmdline" && -d /proc/$pid ]]; then
      echo exiting # a process that has let go of its memory is on its way out
      return 0
    fi
    if [[ "$cmdline " != *"$pattern"* ]]; then
      echo gone
      return 0
    fi
  fi
  echo running
}

# pidfile_pid PIDFILE: prints the pid the file names; false when missing or malformed.
pidfile_pid() {
  local pid
  [[ -s "$1" ]] || return 1
  pid="$(<"$1")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  echo "$pid"
}

# pid_alive PIDFILE [PATTERN]: true when the file names a live process (whose command line
# contains PATTERN, when given). A process that is exiting (right after a SIGKILL, say) is
# waited for, up to PID_EXIT_TIMEOUT seconds, and then counts as not alive: a start that
# follows a crash must not mistake the dying process, or a zombie, for a running service.
pid_alive() {
  local pidfile="$1" pattern="${2:-}" pid state i
  pid="$(pidfile_pid "$pidfile")" || return 1
  for ((i = 0; ; i++)); do
    state="$(pid_state "$pid" "$pattern")"
    case "$state" in
      running) return 0 ;;
      gone) return 1 ;;
    esac
    if ((i == 0)); then log "pid $pid ($pidfile) is exiting; waiting for it to finish"; fi
    if ((i >= PID_EXIT_TIMEOUT * 10)); then
      log "pid $pid ($pidfile) still exiting after ${PID_EXIT_TIMEOUT}s"
      return 0
    fi
    sleep 0.1
  done
}

# stop_pidfile NAME PIDFILE [TIMEOUT] [PATTERN]: SIGTERM, wait, SIGKILL after TIMEOUT s.
# With PATTERN, a pid whose command line does not contain it is another program's: it is
# left alone and the stale pid file removed.
stop_pidfile() {
  local name="$1" pidfile="$2" timeout="${3:-30}" pattern="${4:-}" pid i
  if ! pid_alive "$pidfile" "$pattern"; then
    log "$name not running"
    rm -f "$pidfile"
    return 0
  fi
  pid="$(cat "$pidfile")"
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 5; i++)); do
    [[ "$(pid_state "$pid")" != gone ]] || break
    sleep 0.2
  done
  if [[ "$(pid_state "$pid")" != gone ]]; then
    log "$name did not stop within ${timeout}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < PID_EXIT_TIMEOUT * 5; i++)); do
      [[ "$(pid_state "$pid")" != gone ]] || break
      sleep 0.2
    done
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
