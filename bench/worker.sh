#!/bin/sh
# jailpool worker (Redis Streams) against jailpool batch on the same jobs: N static no-ops,
# `batch -j 2` and 1, 2 and 3 `worker -j 2` (on one machine they share its CPUs), interleaved
# rounds (the machine may be shared and noisy), the median of each in jobs/s and the ratio of
# one worker to batch. The workers' time runs from their start to the last result collected
# (collect --wait): startup, the queue's round trips and the results' publication are in it,
# as batch's startup and output are in its time. Redis: a redis-server of this script's own, on
# a unix socket in a temporary directory, no persistence, stopped at the end.
#
#   bench/worker.sh [-n JOBS] [-r ROUNDS] [-b BUILD_DIR]
set -eu

jobs=2000
rounds=3
build=
while getopts n:r:b: opt; do
  case $opt in
    n) jobs=$OPTARG ;;
    r) rounds=$OPTARG ;;
    b) build=$OPTARG ;;
    *) echo "usage: $0 [-n JOBS] [-r ROUNDS] [-b BUILD_DIR]" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")" && pwd)
[ -n "$build" ] || build=$here/../build
build=$(cd "$build" && pwd)
jailpool=$build/jailpool
[ -x "$build/bench/noop" ] || { echo "worker.sh: no $build/bench/noop (build the project)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "worker.sh: run as root" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "worker.sh: no redis-server (scripts/install-deps.sh)" >&2; exit 2; }

tmp=$(mktemp -d /tmp/jailpool-worker-bench-XXXXXX)
export JAILPOOL_CGROUP_PARENT="jailpool-worker-bench-$$"
redis_pid=
worker_pids=
cleanup() {
  for p in $worker_pids; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [ -n "$redis_pid" ]; then kill -TERM "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
  for d in /sys/fs/cgroup/*/"$JAILPOOL_CGROUP_PARENT" /sys/fs/cgroup/"$JAILPOOL_CGROUP_PARENT"; do
    [ -d "$d" ] && rmdir "$d" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

sock=$tmp/redis.sock
url=unix://$sock
redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 --dir "$tmp" --save "" \
  --appendonly no --logfile "$tmp/redis.log" --daemonize no &
redis_pid=$!
i=0
until redis-cli -s "$sock" ping >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -lt 200 ] || { echo "worker.sh: redis-server did not start" >&2; exit 1; }
  sleep 0.05
done

{ cat "$here/../configs/default.textproto"; echo "bind { src: \"$build/bench\" dst: \"/bench\" }"; } \
  >"$tmp/profile.textproto"
i=0
while [ $i -lt "$jobs" ]; do echo "{\"id\":\"n-$i\",\"argv\":[\"/bench/noop\"]}"; i=$((i + 1)); done \
  >"$tmp/jobs.jsonl"

now() { date +%s.%N; }
rate() { echo "$1 $2 $3" | awk '{ printf "%.1f", $1 / ($3 - $2) }'; }

run_batch() {
  t0=$(now)
  "$jailpool" batch -j 2 --profile "$tmp/profile.textproto" --input "$tmp/jobs.jsonl" \
    --output /dev/null 2>/dev/null
  rate "$jobs" "$t0" "$(now)"
}

run_workers() {
  redis-cli -s "$sock" flushall >/dev/null
  "$jailpool" submit --redis "$url" --input "$tmp/jobs.jsonl" >"$tmp/ids" 2>/dev/null
  t0=$(now)
  worker_pids=
  k=0
  while [ $k -lt "$1" ]; do
    "$jailpool" worker --redis "$url" -j 2 --consumer "b$k" --profile "$tmp/profile.textproto" \
      2>>"$tmp/workers.log" &
    worker_pids="$worker_pids $!"
    k=$((k + 1))
  done
  "$jailpool" collect --redis "$url" --ids "$tmp/ids" --wait --output /dev/null 2>/dev/null
  r=$(rate "$jobs" "$t0" "$(now)")
  for p in $worker_pids; do kill -TERM "$p"; done
  for p in $worker_pids; do wait "$p" || echo "worker.sh: a worker exited $?" >&2; done
  worker_pids=
  echo "$r"
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

b= w1= w2= w3=
r=1
while [ $r -le "$rounds" ]; do
  b="$b $(run_batch)"
  w1="$w1 $(run_workers 1)"
  w2="$w2 $(run_workers 2)"
  w3="$w3 $(run_workers 3)"
  echo "round $r/$rounds: batch$(echo "$b" | awk '{print " " $NF}') | 1 worker$(echo "$w1" | awk '{print " " $NF}') | 2 workers$(echo "$w2" | awk '{print " " $NF}') | 3 workers$(echo "$w3" | awk '{print " " $NF}') jobs/s" >&2
  r=$((r + 1))
done
mb=$(echo "$b" | median)
m1=$(echo "$w1" | median)
m2=$(echo "$w2" | median)
m3=$(echo "$w3" | median)
echo "$jobs no-op jobs, median of $rounds interleaved rounds (jobs/s; ratio to batch -j 2):"
printf "  %-22s %8.1f  1.00\n" "batch -j 2" "$mb"
for row in "1 worker -j 2:$m1" "2 workers -j 2 each:$m2" "3 workers -j 2 each:$m3"; do
  name=${row%:*}; v=${row##*:}
  printf "  %-22s %8.1f  %.2f\n" "$name" "$v" "$(echo "$v $mb" | awk '{ print $1 / $2 }')"
done
