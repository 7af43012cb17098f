#!/usr/bin/env bash
# Local PostgreSQL 15 for tests and development: our own cluster (not Debian's default one) on
# loopback, with role and database `zhengai` (password `zhengai`, development only).
#
#   deploy/local/postgres.sh up      install postgresql-15 if missing, initdb (first run), start, ensure role/db
#   deploy/local/postgres.sh down    stop the cluster (fast shutdown)
#   deploy/local/postgres.sh reset   down + wipe the cluster
#   deploy/local/postgres.sh status  exit 0 iff pg_isready says the server accepts connections
#
# Environment: ZHENGAI_PG_PORT (15432), ZHENGAI_RUN (~/.local/state/zhengai),
# ZHENGAI_PG_DIR (cluster directory, default $ZHENGAI_RUN/pg, see below),
# ZHENGAI_PG_BIN (/usr/lib/postgresql/15/bin).
#
# PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` OS user; as any
# other user it belongs to that user. When root's run dir is not reachable by `postgres` (e.g.
# under /root, mode 700) the cluster lives in /var/lib/postgresql/zhengai-<port> instead and
# $ZHENGAI_RUN/pg is a symlink to it.
set -euo pipefail

PGBIN=${ZHENGAI_PG_BIN:-/usr/lib/postgresql/15/bin}
RUN=${ZHENGAI_RUN:-$HOME/.local/state/zhengai}
PORT=${ZHENGAI_PG_PORT:-15432}
APP_ROLE=zhengai
APP_DB=zhengai

log() { echo "postgres: $*" >&2; }
die() { echo "postgres: ERROR: $*" >&2; exit 1; }

if [[ $EUID -eq 0 ]]; then
  OS_USER=postgres
  # cd /: the postgres user may not be allowed into the caller's working directory.
  as_pg() { (cd / && runuser -u postgres -- "$@"); }
else
  OS_USER=$(id -un)
  as_pg() { "$@"; }
fi

resolve_dirs() {
  if [[ -n ${ZHENGAI_PG_DIR:-} ]]; then
    PGDIR=$ZHENGAI_PG_DIR
  else
    PGDIR=$RUN/pg
    if [[ $EUID -eq 0 ]] && id postgres >/dev/null 2>&1; then
      mkdir -p "$RUN"
      if [[ -L $RUN/pg ]]; then
        PGDIR=$(readlink "$RUN/pg")
      elif ! runuser -u postgres -- test -d "$RUN" 2>/dev/null; then
        PGDIR=/var/lib/postgresql/zhengai-$PORT
      fi
    fi
  fi
  DATA=$PGDIR/data
  SOCK=$PGDIR/sock
  LOGFILE=$PGDIR/postgres.log
}

lock() {
  mkdir -p "$RUN"
  exec 9>"$RUN/pg.lock"
  flock -w 900 9 || die "could not take lock $RUN/pg.lock"
}

install_pg() {
  [[ -x $PGBIN/initdb && -x $PGBIN/pg_ctl && -x $PGBIN/postgres && -x $PGBIN/pg_isready ]] && return 0
  local sudo=()
  if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null || die "PostgreSQL 15 is not installed and there is no sudo: apt-get install -y postgresql-15"
    sudo=(sudo)
  fi
  mkdir -p "$RUN"
  local t0=$SECONDS aptlog=$RUN/apt-postgresql.log
  log "installing postgresql-15 from Debian (first run only; apt log: $aptlog) ..."
  if ! { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q \
         && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql-15; } \
         >"$aptlog" 2>&1; then
    tail -n 30 "$aptlog" >&2
    die "apt-get could not install postgresql-15"
  fi
  [[ -x $PGBIN/initdb ]] || die "postgresql-15 installed but $PGBIN/initdb is missing"
  log "installed in $((SECONDS - t0))s"
}

ready() { "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 3; }

ours_running() { [[ -f $DATA/PG_VERSION ]] && as_pg "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

init_cluster() {
  [[ -f $DATA/PG_VERSION ]] && return 0
  log "initdb $DATA (owner $OS_USER)"
  mkdir -p "$PGDIR"
  [[ $EUID -eq 0 ]] && chown "$OS_USER:" "$PGDIR"
  chmod 700 "$PGDIR"
  if [[ $PGDIR != "$RUN/pg" && ! -e $RUN/pg ]]; then
    ln -s "$PGDIR" "$RUN/pg"
  fi
  as_pg "$PGBIN/initdb" -D "$DATA" -E UTF8 --locale=C.UTF-8 \
      --auth-local=peer --auth-host=scram-sha-256 >"$PGDIR/initdb.log" 2>&1 \
    || { tail -n 30 "$PGDIR/initdb.log" >&2; die "initdb failed"; }
  echo "include_if_exists = 'zhengai.conf'" | as_pg tee -a "$DATA/postgresql.conf" >/dev/null
}

write_config() {
  as_pg mkdir -p "$SOCK"
  as_pg tee "$DATA/zhengai.conf" >/dev/null <<EOF
# Written by deploy/local/postgres.sh on every start; edits are overwritten.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCK'
max_connections = 200
# A throwaway development/test cluster: durability traded for speed.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

ensure_role_db() {
  # Over the unix socket as the cluster's superuser (peer authentication). Nothing is echoed.
  as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -d postgres >/dev/null <<EOF
SELECT 'CREATE ROLE $APP_ROLE' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$APP_ROLE')\gexec
ALTER ROLE $APP_ROLE LOGIN CREATEDB CREATEROLE PASSWORD '$APP_ROLE';
SELECT 'CREATE DATABASE $APP_DB OWNER $APP_ROLE' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$APP_DB')\gexec
EOF
}

cmd_up() {
  lock
  install_pg
  resolve_dirs
  local t0=$SECONDS
  if ours_running; then
    ready || die "the cluster in $DATA is running but not accepting connections on 127.0.0.1:$PORT; log: $LOGFILE"
    ensure_role_db
    log "already running on 127.0.0.1:$PORT ($DATA)"
    return 0
  fi
  if ready; then
    log "a server not started by this script already answers on 127.0.0.1:$PORT; using it (role/database not checked)"
    return 0
  fi
  init_cluster
  write_config
  # 9>&-: the server must not inherit this script's lock.
  if ! as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$LOGFILE" -w -t 60 start >/dev/null 9>&-; then
    [[ -f $LOGFILE ]] && { echo "---- last lines of $LOGFILE ----" >&2; tail -n 30 "$LOGFILE" >&2; }
    die "pg_ctl start failed"
  fi
  ensure_role_db
  log "up on 127.0.0.1:$PORT (ready in $((SECONDS - t0))s); data: $DATA; log: $LOGFILE"
}

cmd_down() {
  lock
  [[ -x $PGBIN/pg_ctl ]] || { log "not installed"; return 0; }
  resolve_dirs
  if ! ours_running; then
    log "not running"
    return 0
  fi
  as_pg "$PGBIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null || die "pg_ctl stop failed; log: $LOGFILE"
  log "stopped"
}

cmd_reset() {
  cmd_down
  resolve_dirs
  rm -rf "$PGDIR"
  [[ -L $RUN/pg ]] && rm -f "$RUN/pg"
  log "data wiped ($PGDIR)"
}

cmd_status() {
  [[ -x $PGBIN/pg_isready ]] || { log "not installed"; return 1; }
  resolve_dirs
  if ready; then
    log "accepting connections on 127.0.0.1:$PORT; log: $LOGFILE"
    return 0
  fi
  log "not accepting connections on 127.0.0.1:$PORT"
  return 1
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  reset) cmd_reset ;;
  status) cmd_status ;;
  *) echo "usage: $0 {up|down|reset|status}" >&2; exit 2 ;;
esac
