#!/usr/bin/env bash
# A throw-away PostgreSQL server for tests (no Docker here).
#
#   scripts/postgres-test-server.sh DIR PORT   initdb DIR if empty, start on 127.0.0.1:PORT,
#                                               create database costtrace_test, print its URL
#   scripts/postgres-test-server.sh stop DIR    stop the server (fast shutdown)
#   scripts/postgres-test-server.sh restart DIR restart it on the same port (fault tests)
#
# Usage: export COSTTRACE_TEST_POSTGRES_URL=$(scripts/postgres-test-server.sh /tmp/ctpg 55432)
#
# Only the URL goes to stdout; progress and errors go to stderr. Runs the
# server as the `postgres` OS user when started as root. Trust auth on
# 127.0.0.1 only, fsync off: for tests, never for data you want to keep.
set -euo pipefail

PG_BIN=${PG_BIN:-}
if [[ -z "$PG_BIN" ]]; then
  for v in 17 16 15 14; do
    if [[ -x /usr/lib/postgresql/$v/bin/pg_ctl ]]; then PG_BIN=/usr/lib/postgresql/$v/bin; break; fi
  done
fi
if [[ -z "$PG_BIN" ]]; then
  PG_BIN=$(dirname "$(command -v pg_ctl || echo /nonexistent/pg_ctl)")
fi
[[ -x "$PG_BIN/pg_ctl" ]] || { echo "postgres-test-server: pg_ctl not found; set PG_BIN" >&2; exit 2; }

usage() {
  echo "usage: $0 DIR PORT | stop DIR | restart DIR" >&2
  exit 2
}

# Runs a command as the postgres user when we are root, else as ourselves.
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

wait_ready() {
  local port=$1
  for _ in $(seq 1 100); do
    if as_pg "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; then return 0; fi
    sleep 0.1
  done
  echo "postgres-test-server: server on port $port did not become ready" >&2
  return 1
}

port_of() {
  local dir=$1
  sed -n 's/^port = \([0-9]*\).*/\1/p' "$dir/postgresql.auto.conf" "$dir/postgresql.conf" 2>/dev/null | tail -n1
}

start() {
  local dir=$1 port=$2
  mkdir -p "$dir"
  if [[ $(id -u) -eq 0 ]]; then chown postgres:postgres "$dir"; fi
  chmod 700 "$dir"
  if [[ -z "$(ls -A "$dir")" ]]; then
    as_pg "$PG_BIN/initdb" -D "$dir" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >&2 \
      || as_pg "$PG_BIN/initdb" -D "$dir" -U postgres --auth=trust --encoding=UTF8 --no-locale >&2
    cat >>"$dir/postgresql.conf" <<EOF
# costtrace test server
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 256MB
EOF
  fi
  if ! as_pg "$PG_BIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    as_pg "$PG_BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -o "-p $port" start >&2
  fi
  wait_ready "$port"
  if ! as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'costtrace_test'" | grep -q 1; then
    as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres costtrace_test >&2
  fi
  echo "postgres://postgres@127.0.0.1:$port/costtrace_test"
}

case "${1:-}" in
  stop)
    [[ $# -eq 2 ]] || usage
    as_pg "$PG_BIN/pg_ctl" -D "$2" -m fast -w stop >&2
    ;;
  restart)
    [[ $# -eq 2 ]] || usage
    port=$(port_of "$2")
    as_pg "$PG_BIN/pg_ctl" -D "$2" -l "$2/server.log" -m fast -w restart >&2
    wait_ready "${port:-5432}"
    ;;
  "" | -h | --help) usage ;;
  *)
    [[ $# -eq 2 ]] || usage
    start "$1" "$2"
    ;;
esac
