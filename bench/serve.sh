#!/usr/bin/env bash
# `jailpool serve` against `jailpool batch` on this machine, side by side, in interleaved rounds
# (others may be using the CPUs: compare within a round). Run as root from the source tree:
#   bench/serve.sh [BUILD_DIR] [ROUNDS]        (N=jobs per round, default 2000)
# 1. Throughput: no-op jobs through one ExecStream with 8 requests in flight (server -j 2)
#    against `jailpool batch -j 2`; the ratio per round.
# 2. Latency: p50 of one Exec of a no-op (one after the other) against the job's cost inside
#    `batch -j 1` (its wall time over its jobs).
# 3. 100 concurrent clients x 100 requests, twice: each answered once; the server's RSS before,
#    between and after.
set -euo pipefail
build=$(realpath "${1:-build}")
rounds=${2:-3}
N=${N:-2000}
jailpool=$build/jailpool
sb=$build/bench/serve_bench
dir=$(mktemp -d /tmp/jailpool-serve-bench-XXXXXX)
parent=jailpool-bench-$$
server=""
cleanup() {
  if [[ -n $server ]] && kill -0 "$server" 2>/dev/null; then kill -TERM "$server"; wait "$server" || true; fi
  for d in /sys/fs/cgroup/"$parent" /sys/fs/cgroup/*/"$parent"; do [[ -d $d ]] && rmdir "$d" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
export JAILPOOL_CGROUP_PARENT=$parent
mkdir -p "$dir/profiles"
src=$(dirname "$(realpath "$0")")/..
{ cat "$src/configs/default.textproto"; echo "bind { src: \"$build/bench\" dst: \"/bench\" }"; } >"$dir/profiles/default.textproto"
for _ in $(seq "$N"); do echo '{"argv":["/bench/noop"]}'; done >"$dir/jobs.jsonl"
head -n 1000 "$dir/jobs.jsonl" >"$dir/jobs1000.jsonl"

batch_rate() {  # jobs/s of `jailpool batch -j $1` over file $2
  "$jailpool" batch -j "$1" --profile "$dir/profiles/default.textproto" --input "$2" --output /dev/null 2>&1 |
    sed -n 's/.*(\([0-9.]*\) jobs\/s).*/\1/p'
}
rss() { awk '/VmRSS/ {print $2 " kB"}' "/proc/$server/status"; }

"$jailpool" serve --listen "unix:$dir/sock" --state-dir "$dir/state" --profile-dir "$dir/profiles" \
  -j 2 --queue 1024 >"$dir/out" 2>"$dir/err" &
server=$!
for _ in $(seq 300); do grep -q "listening on" "$dir/out" 2>/dev/null && break; sleep 0.1; done
addr=unix:$dir/sock
"$sb" "$addr" /bench/noop stream 200 8 >/dev/null  # warm the pool

echo "== throughput: ExecStream (8 in flight, serve -j 2) vs batch -j 2, $N no-op jobs per run"
ratios=()
for r in $(seq "$rounds"); do
  b=$(batch_rate 2 "$dir/jobs.jsonl")
  s=$("$sb" "$addr" /bench/noop stream "$N" 8 | sed -n 's/.*= \([0-9.]*\) jobs\/s.*/\1/p')
  ratio=$(awk -v s="$s" -v b="$b" 'BEGIN { printf "%.2f", s / b }')
  ratios+=("$ratio")
  echo "round $r: batch $b jobs/s, serve $s jobs/s, ratio $ratio"
done
echo "median ratio: $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"

echo "== latency: one Exec at a time vs the job's cost inside batch -j 1 (1000 jobs)"
for r in $(seq "$rounds"); do
  b=$(batch_rate 1 "$dir/jobs1000.jsonl")
  l=$("$sb" "$addr" /bench/noop latency 1000)
  p50=$(echo "$l" | sed -n 's/.*p50 \([0-9]*\) us.*/\1/p')
  per_job=$(awk -v b="$b" 'BEGIN { printf "%.0f", 1e6 / b }')
  echo "round $r: batch -j 1 $per_job us/job; $l; over batch: $((p50 - per_job)) us"
done

echo "== 100 concurrent clients x 100 requests, twice"
echo "server RSS before: $(rss)"
"$sb" "$addr" /bench/noop clients 100 100
echo "server RSS after 10,000: $(rss)"
"$sb" "$addr" /bench/noop clients 100 100
echo "server RSS after 20,000: $(rss)"
