#!/usr/bin/env bash
# Local single-node Kafka (KRaft) from Maven Central jars, no Docker needed.
#
#   deploy/scripts/kafka.sh fetch|start|wait|topics|stop|status|list [...]
#
# Several subcommands may be given in one call: kafka.sh fetch start wait topics
# State lives in $LOCAL_DIR/kafka (default .local/kafka: libs, data, logs, cluster-id, kafka.pid);
# KAFKA_PORT, KAFKA_CONTROLLER_PORT and KAFKA_LIBS may be set to run a second broker.
set -euo pipefail
# shellcheck source=deploy/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KAFKA_DIR="$LOCAL_DIR/kafka"
# The jars are read-only: a second stack (LOCAL_DIR elsewhere) may share them.
KAFKA_LIBS="${KAFKA_LIBS:-$KAFKA_DIR/libs}"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_LOGS="$KAFKA_DIR/logs"
KAFKA_PID="$KAFKA_DIR/kafka.pid"
KAFKA_CONFIG="$KAFKA_DIR/server.properties"
KAFKA_CLUSTER_ID_FILE="$KAFKA_DIR/cluster-id"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m -Xms512m}"
KAFKA_WAIT_TIMEOUT="${KAFKA_WAIT_TIMEOUT:-120}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
DEPLOY_KAFKA="$ROOT_DIR/deploy/kafka"

# java_args CLASS ARGS...: fills JAVA_ARGS with the full java command line.
java_args() {
  # shellcheck disable=SC2206 # KAFKA_HEAP_OPTS is a list of JVM flags
  JAVA_ARGS=(java $KAFKA_HEAP_OPTS -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j.configuration=file:$DEPLOY_KAFKA/log4j.properties"
    "-Dkafka.logs.dir=$KAFKA_LOGS"
    -cp "$KAFKA_LIBS/*" "$@")
}

java_cmd() {
  java_args "$@"
  "${JAVA_ARGS[@]}"
}

# apt_install PKG...: install Debian packages (root only), for bare CI machines.
apt_install() {
  [[ "$(id -u)" == 0 ]] || die "missing $*; install them (apt-get install -y $*)"
  log "installing $* with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "$@"
}

ensure_tools() {
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
}

cmd_fetch() {
  if compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null \
     && compgen -G "$KAFKA_LIBS/slf4j-reload4j-*.jar" >/dev/null \
     && [[ -f "$KAFKA_LIBS/.complete" ]]; then
    log "kafka jars already in $KAFKA_LIBS"
    return 0
  fi
  ensure_tools
  command -v mvn >/dev/null || apt_install maven
  log "fetching kafka jars with maven into $KAFKA_LIBS"
  rm -rf "$KAFKA_LIBS.tmp"
  mkdir -p "$KAFKA_DIR"
  mvn -q -B -Dstyle.color=never -f "$DEPLOY_KAFKA/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS.tmp"
  rm -rf "$KAFKA_LIBS" "$DEPLOY_KAFKA/target"
  mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
  touch "$KAFKA_LIBS/.complete"
  log "fetched $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars"
}

render_config() {
  mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
  sed -e "s|@LOG_DIRS@|$KAFKA_DATA|g" \
      -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
      -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
      "$DEPLOY_KAFKA/server.properties.template" > "$KAFKA_CONFIG.tmp"
  mv "$KAFKA_CONFIG.tmp" "$KAFKA_CONFIG"
}

cmd_start() {
  ensure_tools
  if pid_alive "$KAFKA_PID"; then
    log "kafka already running (pid $(cat "$KAFKA_PID"))"
    return 0
  fi
  [[ -f "$KAFKA_LIBS/.complete" ]] || cmd_fetch
  if port_open 127.0.0.1 "$KAFKA_PORT"; then
    die "port $KAFKA_PORT is already in use by another process (not ours: no live $KAFKA_PID)"
  fi
  render_config
  if [[ ! -s "$KAFKA_CLUSTER_ID_FILE" ]]; then
    java_cmd kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1 > "$KAFKA_CLUSTER_ID_FILE.tmp"
    mv "$KAFKA_CLUSTER_ID_FILE.tmp" "$KAFKA_CLUSTER_ID_FILE"
  fi
  if [[ ! -f "$KAFKA_DATA/meta.properties" ]]; then
    log "formatting storage in $KAFKA_DATA (cluster id $(cat "$KAFKA_CLUSTER_ID_FILE"))"
    java_cmd kafka.tools.StorageTool format -g -t "$(cat "$KAFKA_CLUSTER_ID_FILE")" \
      -c "$KAFKA_CONFIG" >>"$KAFKA_LOGS/storage-format.log" 2>&1 \
      || { tail -n 30 "$KAFKA_LOGS/storage-format.log" >&2; die "storage format failed"; }
  fi
  log "starting kafka on $KAFKA_BOOTSTRAP (logs in $KAFKA_LOGS)"
  java_args kafka.Kafka "$KAFKA_CONFIG"
  setsid nohup "${JAVA_ARGS[@]}" >>"$KAFKA_LOGS/kafka.out" 2>&1 </dev/null &
  echo $! > "$KAFKA_PID"
  sleep 1
  if ! pid_alive "$KAFKA_PID"; then
    tail -n 40 "$KAFKA_LOGS/kafka.out" >&2 || true
    rm -f "$KAFKA_PID"
    die "kafka exited right after start"
  fi
  log "kafka started (pid $(cat "$KAFKA_PID"))"
}

cmd_wait() {
  require_venv
  log "waiting for kafka at $KAFKA_BOOTSTRAP (timeout ${KAFKA_WAIT_TIMEOUT}s)"
  local deadline=$((SECONDS + KAFKA_WAIT_TIMEOUT))
  # Fast path while the port is not even open (and bail out if the broker died).
  while ! port_open 127.0.0.1 "$KAFKA_PORT"; do
    if [[ -f "$KAFKA_PID" ]] && ! pid_alive "$KAFKA_PID"; then
      tail -n 40 "$KAFKA_LOGS/kafka.out" >&2 || true
      die "kafka process exited"
    fi
    if ((SECONDS >= deadline)); then break; fi
    sleep 0.5
  done
  local left=$((deadline - SECONDS))
  ((left > 5)) || left=5
  if ! "$PYTHON" "$ROOT_DIR/deploy/scripts/kafka_admin.py" --bootstrap "$KAFKA_BOOTSTRAP" wait --timeout "$left"; then
    log "kafka not ready; last log lines:"
    tail -n 40 "$KAFKA_LOGS/kafka.out" >&2 || true
    exit 1
  fi
}

cmd_topics() {
  require_venv
  "$PYTHON" "$ROOT_DIR/deploy/scripts/kafka_admin.py" --bootstrap "$KAFKA_BOOTSTRAP" create-topics \
    "${TOPIC_MEMBERS:-commerce.members}:6" \
    "${TOPIC_ORDERS:-commerce.orders}:6" \
    "${TOPIC_SHIPMENTS:-commerce.shipments}:6" \
    "${TOPIC_REFUNDS:-commerce.refunds}:6" \
    "${TOPIC_REVIEWS:-commerce.reviews}:6" \
    "${TOPIC_ACTIONS:-member.actions}:6" \
    "${TOPIC_NOTIFICATIONS:-member.notifications}:3" \
    "${TOPIC_DLQ:-commerce.dlq}:3"
}

cmd_list() {
  require_venv
  "$PYTHON" "$ROOT_DIR/deploy/scripts/kafka_admin.py" --bootstrap "$KAFKA_BOOTSTRAP" list
}

cmd_stop() {
  stop_pidfile kafka "$KAFKA_PID" "$KAFKA_STOP_TIMEOUT"
}

cmd_status() {
  if pid_alive "$KAFKA_PID"; then
    echo "kafka: running (pid $(cat "$KAFKA_PID"), $KAFKA_BOOTSTRAP)"
  else
    echo "kafka: stopped"
    return 3
  fi
}

[[ $# -gt 0 ]] || die "usage: $0 fetch|start|wait|topics|list|stop|status [...]"
for cmd in "$@"; do
  case "$cmd" in
    fetch | start | wait | topics | list | stop | status) "cmd_$cmd" ;;
    *) die "unknown subcommand '$cmd' (fetch|start|wait|topics|list|stop|status)" ;;
  esac
done
