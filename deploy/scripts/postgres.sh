#!/usr/bin/env bash
# Private PostgreSQL cluster for local development and CI, no Docker needed.
#
#   deploy/scripts/postgres.sh install|start|stop|status|url [...]
#
# Data in .local/pg/data, unix socket in .local/pg/run, listens on
# 127.0.0.1:$PG_PORT (default 55432), trust auth (local use only).
# Creates role `engagement` (LOGIN) owning databases `engagement` and
# `engagement_test`. The server runs as the `postgres` system user.
set -euo pipefail
# shellcheck source=deploy/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PG_DIR="$LOCAL_DIR/pg"
PG_DATA="$PG_DIR/data"
PG_SOCKET_DIR="$PG_DIR/run"
PG_LOG="$PG_DIR/postgres.log"
PG_PORT="${PG_PORT:-55432}"
PG_USER_OS="${PG_USER_OS:-postgres}"
PG_ROLE="${PG_ROLE:-engagement}"
PG_DATABASES="${PG_DATABASES:-engagement engagement_test}"

pg_bindir() {
  local initdb
  if [[ -n "${PG_BINDIR:-}" && -x "$PG_BINDIR/initdb" ]]; then
    echo "$PG_BINDIR"
    return 0
  fi
  # Highest installed major version wins.
  initdb="$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n1 || true)"
  [[ -n "$initdb" ]] || return 1
  dirname "$initdb"
}

cmd_install() {
  if pg_bindir >/dev/null; then
    log "postgresql server binaries present in $(pg_bindir)"
    return 0
  fi
  [[ "$(id -u)" == 0 ]] || die "postgresql server missing and not root: install it (apt-get install -y postgresql)"
  log "installing postgresql with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends postgresql postgresql-client
  # The Debian package starts its own cluster on port 5432; we do not need it.
  if command -v pg_ctlcluster >/dev/null; then
    pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
      pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
    done
  fi
  pg_bindir >/dev/null || die "initdb still missing after apt-get install"
}

# as_pg CMD...: run as the postgres OS user when we are root.
as_pg() {
  if [[ "$(id -u)" == 0 ]]; then
    runuser -u "$PG_USER_OS" -- "$@"
  else
    "$@"
  fi
}

# Every directory above .local/pg must be traversable by the postgres user.
ensure_traversable() {
  local path="" part
  local -a parts
  IFS=/ read -r -a parts <<<"${PG_DIR#/}"
  # Walk from / downwards; stop before PG_DIR itself (chowned below).
  for part in "${parts[@]:0:${#parts[@]}-1}"; do
    path="$path/$part"
    if ! as_pg test -x "$path"; then
      log "granting o+x on $path so the $PG_USER_OS user can reach $PG_DIR"
      chmod o+x "$path"
    fi
  done
}

prepare_dirs() {
  mkdir -p "$PG_DIR" "$PG_SOCKET_DIR"
  if [[ "$(id -u)" == 0 ]]; then
    id "$PG_USER_OS" >/dev/null 2>&1 || die "system user $PG_USER_OS missing (is postgresql installed?)"
    chown "$PG_USER_OS:" "$PG_DIR" "$PG_SOCKET_DIR"
    [[ ! -d "$PG_DATA" ]] || chown -R "$PG_USER_OS:" "$PG_DATA"
    touch "$PG_LOG" && chown "$PG_USER_OS:" "$PG_LOG"
    ensure_traversable
  fi
  chmod 0755 "$PG_DIR"
}

psql_admin() {
  as_pg "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U postgres -d postgres
}

is_running() {
  [[ -f "$PG_DATA/PG_VERSION" ]] || return 1
  as_pg "$BINDIR/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

cmd_start() {
  cmd_install
  BINDIR="$(pg_bindir)"
  prepare_dirs
  if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
    log "initialising cluster in $PG_DATA"
    rm -rf "$PG_DATA"
    as_pg "$BINDIR/initdb" -D "$PG_DATA" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 \
      || as_pg "$BINDIR/initdb" -D "$PG_DATA" -A trust -U postgres -E UTF8 --no-locale >"$PG_DIR/initdb.log" 2>&1 \
      || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
  fi
  if is_running; then
    log "postgres already running ($(head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null), port $PG_PORT)"
  else
    if port_open 127.0.0.1 "$PG_PORT"; then
      die "port $PG_PORT is in use by another process; set PG_PORT to use a different one"
    fi
    log "starting postgres on 127.0.0.1:$PG_PORT (log $PG_LOG)"
    as_pg "$BINDIR/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_SOCKET_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=2GB -c max_wal_size=4GB" \
      >/dev/null || { tail -n 30 "$PG_LOG" >&2; die "postgres failed to start"; }
  fi
  ensure_databases
}

ensure_databases() {
  local db
  psql_admin <<SQL
SELECT 'CREATE ROLE "$PG_ROLE" LOGIN CREATEDB'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_ROLE')\gexec
SQL
  for db in $PG_DATABASES; do
    psql_admin <<SQL
SELECT 'CREATE DATABASE "$db" OWNER "$PG_ROLE"'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$db')\gexec
SQL
  done
  log "role $PG_ROLE and databases ($PG_DATABASES) ready on 127.0.0.1:$PG_PORT"
}

cmd_stop() {
  BINDIR="$(pg_bindir)" || { log "postgres not installed"; return 0; }
  if is_running; then
    log "stopping postgres"
    as_pg "$BINDIR/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null
  else
    log "postgres not running"
  fi
}

cmd_status() {
  BINDIR="$(pg_bindir)" || { echo "postgres: not installed"; return 3; }
  if is_running; then
    echo "postgres: running (pid $(head -n1 "$PG_DATA/postmaster.pid"), 127.0.0.1:$PG_PORT)"
  else
    echo "postgres: stopped"
    return 3
  fi
}

cmd_url() {
  echo "postgresql+asyncpg://$PG_ROLE@127.0.0.1:$PG_PORT/engagement"
}

[[ $# -gt 0 ]] || die "usage: $0 install|start|stop|status|url [...]"
for cmd in "$@"; do
  case "$cmd" in
    install | start | stop | status | url) "cmd_$cmd" ;;
    *) die "unknown subcommand '$cmd' (install|start|stop|status|url)" ;;
  esac
done
