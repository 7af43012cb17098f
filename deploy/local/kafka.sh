#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, broker+controller in one JVM, loopback only) for tests
# and development. No Docker: the broker jars come from Maven Central.
#
#   deploy/local/kafka.sh up      fetch jars (first run only), configure, format, start, wait until it answers
#   deploy/local/kafka.sh down    stop (TERM, then KILL after a grace period)
#   deploy/local/kafka.sh reset   down + wipe data and config (the jar cache is kept)
#   deploy/local/kafka.sh status  exit 0 iff the broker answers
#
# Environment: ZHENGAI_KAFKA_PORT (19092), ZHENGAI_KAFKA_CONTROLLER_PORT (19093),
# ZHENGAI_CACHE (~/.cache/zhengai), ZHENGAI_RUN (~/.local/state/zhengai),
# ZHENGAI_KAFKA_HEAP (-Xmx512m), ZHENGAI_KAFKA_START_TIMEOUT (s, 120), ZHENGAI_KAFKA_STOP_GRACE (s, 30).
set -euo pipefail

KAFKA_VERSION=3.9.1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${ZHENGAI_CACHE:-$HOME/.cache/zhengai}
RUN=${ZHENGAI_RUN:-$HOME/.local/state/zhengai}
PORT=${ZHENGAI_KAFKA_PORT:-19092}
CPORT=${ZHENGAI_KAFKA_CONTROLLER_PORT:-19093}
HEAP=${ZHENGAI_KAFKA_HEAP:--Xmx512m}
START_TIMEOUT=${ZHENGAI_KAFKA_START_TIMEOUT:-120}
STOP_GRACE=${ZHENGAI_KAFKA_STOP_GRACE:-30}

JARS=$CACHE/kafka-$KAFKA_VERSION
LIBS=$JARS/libs
MARKER=$JARS/.complete          # written last: its presence means the download is complete
KDIR=$RUN/kafka
DATA=$KDIR/data
CONF=$KDIR/server.properties
LOG4J=$KDIR/log4j.properties
PIDFILE=$KDIR/kafka.pid
LOGFILE=$KDIR/kafka.log

log() { echo "kafka: $*" >&2; }
die() { echo "kafka: ERROR: $*" >&2; exit 1; }

show_log_tail() {
  if [[ -s $LOGFILE ]]; then
    echo "---- last lines of $LOGFILE ----" >&2
    tail -n 40 "$LOGFILE" >&2
    echo "----" >&2
  fi
}

lock() {  # lock <file>: serialise concurrent invocations on fd 9
  mkdir -p "$(dirname "$1")"
  exec 9>"$1"
  flock -w 900 9 || die "could not take lock $1"
}

fetch_jars() {
  [[ -f $MARKER ]] && return 0
  command -v java >/dev/null || die "java not found (JDK 17 expected)"
  command -v mvn >/dev/null || die "mvn not found (apt-get install -y maven)"
  mkdir -p "$CACHE"
  exec 8>"$CACHE/.kafka-$KAFKA_VERSION.lock"
  flock -w 900 8 || die "could not take the download lock"
  [[ -f $MARKER ]] && return 0   # another invocation finished it meanwhile
  local tmp
  tmp=$(mktemp -d "$CACHE/.kafka-$KAFKA_VERSION.partial.XXXXXX")
  log "downloading Apache Kafka $KAFKA_VERSION broker jars from Maven Central (first run only) ..."
  # Run from a scratch copy of the pom so Maven writes nothing into the checkout.
  cp "$HERE/kafka-pom.xml" "$tmp/pom.xml"
  if ! (cd "$tmp" && mvn -B -q -f pom.xml dependency:copy-dependencies \
          -DincludeScope=runtime -DoutputDirectory="$tmp/libs" >"$tmp/mvn.log" 2>&1); then
    tail -n 40 "$tmp/mvn.log" >&2
    rm -rf "$tmp"
    die "mvn could not fetch the Kafka jars (network to Maven Central?)"
  fi
  if [[ ! -f $tmp/libs/kafka_2.13-$KAFKA_VERSION.jar || ! -f $tmp/libs/reload4j-1.2.25.jar ]]; then
    rm -rf "$tmp"
    die "the download looks incomplete (kafka_2.13-$KAFKA_VERSION.jar or reload4j missing)"
  fi
  rm -f "$tmp/pom.xml" "$tmp/mvn.log"
  rm -rf "$JARS"
  mv "$tmp" "$JARS"
  touch "$MARKER"
  log "cached $(ls "$LIBS" | wc -l) jars in $LIBS"
}

# The pid of the broker this script started for this run dir, if it is alive.
running_pid() {
  local pid=""
  [[ -s $PIDFILE ]] && pid=$(<"$PIDFILE")
  if [[ -n $pid ]] && is_ours "$pid"; then echo "$pid"; return 0; fi
  # pid file gone or stale (e.g. the run dir was removed under a running broker): look for our
  # exact command line (it names this run dir's server.properties).
  local f p
  for f in /proc/[0-9]*/cmdline; do
    p=${f#/proc/}; p=${p%/cmdline}
    if is_ours "$p"; then echo "$p"; return 0; fi
  done
  return 1
}

is_ours() {
  local cmd
  cmd=$(tr '\0' '\n' 2>/dev/null <"/proc/$1/cmdline") || return 1
  grep -qxF kafka.Kafka <<<"$cmd" && grep -qxF "$CONF" <<<"$cmd"
}

# Exit 0 iff a Kafka broker on 127.0.0.1:$PORT answers a Metadata request and lists at least one
# (unfenced) broker. Plain stdlib Python: needs neither the venv nor another JVM start.
answers() {
  python3 - "$PORT" <<'PY'
import socket, struct, sys

port = int(sys.argv[1])
try:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.settimeout(3)
        client_id = b"zhengai-ready"
        # Metadata v0 (api key 3), correlation id 7, empty topic list (= all topics).
        body = struct.pack(">hhih", 3, 0, 7, len(client_id)) + client_id + struct.pack(">i", 0)
        s.sendall(struct.pack(">i", len(body)) + body)

        def read(n):
            buf = b""
            while len(buf) < n:
                chunk = s.recv(n - len(buf))
                if not chunk:
                    raise ConnectionError("connection closed")
                buf += chunk
            return buf

        (size,) = struct.unpack(">i", read(4))
        data = read(size)
        correlation, brokers = struct.unpack(">ii", data[:8])
        sys.exit(0 if correlation == 7 and brokers >= 1 else 1)
except Exception:
    sys.exit(1)
PY
}

write_config() {
  mkdir -p "$DATA"
  cat >"$CONF" <<EOF
# Written by deploy/local/kafka.sh on every start; edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA
metadata.log.dir=$DATA
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
num.network.threads=2
num.io.threads=4
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=33554432
EOF
  cat >"$LOG4J" <<'EOF'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
EOF
}

java_opts() {
  # shellcheck disable=SC2206
  local heap=($HEAP)
  printf '%s\n' "${heap[@]}" -Xms128m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    "-Dlog4j.configuration=file:$LOG4J" "-Dkafka.logs.dir=$KDIR/logs"
}

format_storage() {
  [[ -f $DATA/meta.properties ]] && return 0
  local opts cid
  mapfile -t opts < <(java_opts)
  if [[ ! -s $KDIR/cluster.id ]]; then
    java "${opts[@]}" -cp "$LIBS/*" kafka.tools.StorageTool random-uuid >"$KDIR/cluster.id.tmp" 2>"$KDIR/format.log" \
      || { cat "$KDIR/format.log" >&2; die "StorageTool random-uuid failed"; }
    mv "$KDIR/cluster.id.tmp" "$KDIR/cluster.id"
  fi
  cid=$(tr -d '[:space:]' <"$KDIR/cluster.id")
  java "${opts[@]}" -cp "$LIBS/*" kafka.tools.StorageTool format -t "$cid" -c "$CONF" --ignore-formatted \
    >>"$KDIR/format.log" 2>&1 || { cat "$KDIR/format.log" >&2; die "StorageTool format failed"; }
}

start_broker() {
  local opts
  mapfile -t opts < <(java_opts)
  [[ -f $LOGFILE ]] && mv -f "$LOGFILE" "$LOGFILE.1"
  rm -f "$PIDFILE"
  # setsid: the broker outlives this shell (and make/pytest); the inner bash records its own pid
  # and then becomes the JVM, so the pid file holds the JVM's pid.
  # The lock fds (8, 9) are closed so the broker never holds this script's locks.
  (
    cd "$KDIR"
    exec 8>&- 9>&-
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PIDFILE" \
      java "${opts[@]}" -cp "$LIBS/*" kafka.Kafka "$CONF" >"$LOGFILE" 2>&1 </dev/null &
  )
  local i
  for i in $(seq 50); do [[ -s $PIDFILE ]] && break; sleep 0.1; done
  [[ -s $PIDFILE ]] || die "the broker did not start (no pid file)"
}

wait_ready() {
  local pid=$1 deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    answers && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      show_log_tail
      die "the broker (pid $pid) exited during startup; full log: $LOGFILE"
    fi
    sleep 0.5
  done
  show_log_tail
  die "the broker (pid $pid) did not answer on 127.0.0.1:$PORT within ${START_TIMEOUT}s; it is left running, stop it with: $0 down"
}

cmd_up() {
  lock "$RUN/kafka.lock"
  fetch_jars
  local pid t0=$SECONDS
  if pid=$(running_pid); then
    wait_ready "$pid"
    log "already running (pid $pid) on 127.0.0.1:$PORT"
    return 0
  fi
  if answers; then
    log "a broker not started by this script already answers on 127.0.0.1:$PORT; using it"
    return 0
  fi
  write_config
  format_storage
  start_broker
  pid=$(<"$PIDFILE")
  wait_ready "$pid"
  log "up on 127.0.0.1:$PORT (pid $pid, ready in $((SECONDS - t0))s); log: $LOGFILE"
}

cmd_down() {
  lock "$RUN/kafka.lock"
  local pid
  if ! pid=$(running_pid); then
    rm -f "$PIDFILE"
    log "not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_GRACE))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid still alive after ${STOP_GRACE}s; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$PIDFILE"
  log "stopped (pid $pid)"
}

cmd_reset() {
  cmd_down
  rm -rf "$KDIR"
  log "data wiped ($KDIR); jar cache kept ($JARS)"
}

cmd_status() {
  local pid
  if answers; then
    pid=$(running_pid) || pid="not started by this script"
    log "answers on 127.0.0.1:$PORT (pid $pid); log: $LOGFILE"
    return 0
  fi
  if pid=$(running_pid); then
    log "process $pid is running but does not answer on 127.0.0.1:$PORT (starting?); log: $LOGFILE"
  else
    log "not running"
  fi
  return 1
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  reset) cmd_reset ;;
  status) cmd_status ;;
  *) echo "usage: $0 {up|down|reset|status}" >&2; exit 2 ;;
esac
