#!/usr/bin/env bash
# examples/judge.py end to end: a `jailpool serve` with the default and cpp profiles on a unix
# socket in a temporary directory, the example run against it, the server stopped (SIGTERM).
#   tests/serve_judge_test.sh JAILPOOL PYTHON STUBS_DIR SOURCE_DIR
set -euo pipefail
jailpool=$1 python=$2 stubs=$3 src=$4
dir=$(mktemp -d /tmp/jailpool-judge-test-XXXXXX)
parent="jailpool-test-judge-$$"
server=""
cleanup() {
  if [[ -n $server ]] && kill -0 "$server" 2>/dev/null; then
    kill -TERM "$server"
    wait "$server" || true
  fi
  for d in /sys/fs/cgroup/"$parent" /sys/fs/cgroup/*/"$parent"; do
    [[ -d $d ]] && rmdir "$d" 2>/dev/null || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT
mkdir -p "$dir/profiles"
cp "$src/configs/cpp.textproto" "$dir/profiles/cpp.textproto"
JAILPOOL_CGROUP_PARENT=$parent "$jailpool" serve --listen "unix:$dir/sock" --state-dir "$dir/state" \
  --profile-dir "$dir/profiles" -j 2 >"$dir/out" 2>"$dir/err" &
server=$!
for _ in $(seq 300); do
  grep -q "listening on" "$dir/out" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$dir/err" >&2; exit 1; }
  sleep 0.1
done
rc=0
"$python" "$src/examples/judge.py" --stubs "$stubs" --server "unix:$dir/sock" || rc=$?
kill -TERM "$server"
wait "$server" || { echo "jailpool serve exited $?" >&2; cat "$dir/err" >&2; rc=1; }
server=""
exit $rc
