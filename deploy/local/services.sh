#!/usr/bin/env bash
# Local real services for tests and development: Kafka (kafka.sh) and PostgreSQL (postgres.sh),
# and the real browser the web tests drive (browser.sh: Debian's chromium and a CJK font).
#
#   deploy/local/services.sh {up|down|reset|status}
#
# `up` starts both in parallel (a cold start installs/downloads what is missing); `status` exits 0
# iff both answer. See deploy/local/README.md for ports and environment variables.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN=${ZHENGAI_RUN:-$HOME/.local/state/zhengai}

logs() {
  echo "services: logs: Kafka $RUN/kafka/kafka.log, PostgreSQL $RUN/pg/postgres.log" >&2
}

case ${1:-} in
  up)
    t0=$SECONDS
    # the browser first: both it and PostgreSQL may need apt-get, which takes one lock at a time
    "$HERE/browser.sh" up || { echo "services: ERROR: no browser for the web tests (see above)" >&2; exit 1; }
    "$HERE/postgres.sh" up & pg=$!
    "$HERE/kafka.sh" up & kf=$!
    rc=0
    wait "$pg" || rc=1
    wait "$kf" || rc=1
    logs
    if ((rc == 0)); then
      echo "services: up in $((SECONDS - t0))s (Kafka 127.0.0.1:${ZHENGAI_KAFKA_PORT:-19092}, PostgreSQL 127.0.0.1:${ZHENGAI_PG_PORT:-15432})" >&2
    else
      echo "services: ERROR: at least one service did not come up (see above)" >&2
    fi
    exit "$rc"
    ;;
  down|reset)
    rc=0
    "$HERE/kafka.sh" "$1" || rc=1
    "$HERE/postgres.sh" "$1" || rc=1
    exit "$rc"
    ;;
  status)
    rc=0
    "$HERE/kafka.sh" status || rc=1
    "$HERE/postgres.sh" status || rc=1
    logs
    exit "$rc"
    ;;
  *)
    echo "usage: $0 {up|down|reset|status}" >&2
    exit 2
    ;;
esac
