#!/usr/bin/env bash
# A Spark standalone cluster on this machine, for `text2node link --backend spark --spark-master URL`:
# one master and SPARK_WORKERS workers, each started with pyspark's own launcher, bin/spark-class (what
# Spark's sbin/start-master.sh and start-worker.sh run through spark-daemon.sh; the pip package ships
# no start-master.sh). Every port is bound to 127.0.0.1; the web UIs take free ports.
#
#   scripts/spark-standalone.sh start [STATE_DIR]   # waits until every worker has registered, prints the URL
#   scripts/spark-standalone.sh status [STATE_DIR]  # the master URL and the pid of each daemon
#   scripts/spark-standalone.sh stop [STATE_DIR]    # stops the workers (and their executors), then the master
#
# STATE_DIR (default ${TMPDIR:-/tmp}/text2node-spark) holds the pid files (pids/master.pid,
# pids/worker-N.pid), the daemons' logs (logs/) and the workers' work folders (work-N/, with the executor
# logs). Settings, from the environment:
#   SPARK_MASTER_PORT (7077), SPARK_WORKERS (2), SPARK_WORKER_CORES (1), SPARK_WORKER_MEMORY (1g),
#   PYTHON (python3): the interpreter whose pyspark is used; the workers' Python (PYSPARK_PYTHON) too.
set -euo pipefail

usage="usage: $0 start|status|stop [STATE_DIR]"
cmd=${1:-}
state=${2:-${TMPDIR:-/tmp}/text2node-spark}
PY=${PYTHON:-python3}
port=${SPARK_MASTER_PORT:-7077}
n_workers=${SPARK_WORKERS:-2}
url="spark://127.0.0.1:$port"

SPARK_HOME=${SPARK_HOME:-$("$PY" -c "from pyspark.find_spark_home import _find_spark_home; print(_find_spark_home())")}
export SPARK_HOME
export SPARK_LOCAL_IP=127.0.0.1 # the daemons, their web UIs and the executors bind here
export SPARK_DAEMON_MEMORY=${SPARK_DAEMON_MEMORY:-512m}
export SPARK_MASTER_OPTS="${SPARK_MASTER_OPTS:-} -Dspark.master.rest.enabled=false"
PYSPARK_PYTHON=$("$PY" -c "import sys; print(sys.executable)")
export PYSPARK_PYTHON
mkdir -p "$state/pids" "$state/logs"
state=$(cd "$state" && pwd)

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

launch() { # launch NAME CLASS ARGS...: run spark-class in the background, its pid in pids/NAME.pid
  local name=$1
  shift
  nohup "$SPARK_HOME/bin/spark-class" "$@" >"$state/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$state/pids/$name.pid" # spark-class execs java: this is the daemon's pid
}

wait_for() { # wait_for NAME PATTERN: until the daemon's log has PATTERN (90 s at most)
  local i log=$state/logs/$1.log
  for i in $(seq 1 180); do
    if grep -q "$2" "$log" 2>/dev/null; then return 0; fi
    if ! alive "$state/pids/$1.pid"; then
      echo "spark-standalone: $1 exited; the end of $log:" >&2
      tail -20 "$log" >&2
      return 1
    fi
    sleep 0.5
  done
  echo "spark-standalone: $1 did not log '$2' within 90 s; see $log" >&2
  return 1
}

stop_daemon() { # stop_daemon PIDFILE: SIGTERM, then SIGKILL after 15 s
  local pid i
  alive "$1" || { rm -f "$1"; return 0; }
  pid=$(cat "$1")
  kill "$pid" 2>/dev/null || true
  for i in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$1"; return 0; }
    sleep 0.5
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$1"
}

case "$cmd" in
  start)
    if alive "$state/pids/master.pid"; then
      echo "spark-standalone: a master from $state is running (pid $(cat "$state/pids/master.pid")); stop it first." >&2
      exit 1
    fi
    if "$PY" -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $port)) != 0)"; then
      echo "spark-standalone: port $port on 127.0.0.1 is in use; set SPARK_MASTER_PORT to a free port." >&2
      exit 1
    fi
    launch master org.apache.spark.deploy.master.Master --host 127.0.0.1 --port "$port" --webui-port 0
    # the workers start while the master finishes starting (a worker that finds no master retries)
    wait_for master "Started daemon"
    for i in $(seq 1 "$n_workers"); do
      mkdir -p "$state/work-$i"
      launch "worker-$i" org.apache.spark.deploy.worker.Worker --host 127.0.0.1 --webui-port 0 \
        --cores "${SPARK_WORKER_CORES:-1}" --memory "${SPARK_WORKER_MEMORY:-1g}" --work-dir "$state/work-$i" "$url"
    done
    wait_for master "I have been elected leader"
    for i in $(seq 1 "$n_workers"); do
      wait_for "worker-$i" "Successfully registered with master"
    done
    echo "$url"
    ;;
  status)
    echo "master $url: $(alive "$state/pids/master.pid" && cat "$state/pids/master.pid" || echo stopped)"
    for f in "$state"/pids/worker-*.pid; do
      [ -e "$f" ] || continue
      name=$(basename "$f" .pid)
      echo "$name: $(alive "$f" && cat "$f" || echo stopped)"
    done
    ;;
  stop)
    for f in "$state"/pids/worker-*.pid; do
      [ -e "$f" ] && stop_daemon "$f"
    done
    stop_daemon "$state/pids/master.pid"
    ;;
  *)
    echo "$usage" >&2
    exit 2
    ;;
esac
