#!/usr/bin/env bash
# Builds jailpool and runs the whole test suite. Runs as root (the tests create namespaces and
# their own cgroup parent, jailpool-test-<pid>, removed at the end).
#   SANITIZE=1 scripts/test.sh   builds with ASan+UBSan into build-asan and runs the same suite
#   scripts/test.sh ARGS...      passes ARGS to ctest (e.g. -E TenThousand)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
  echo "scripts/test.sh: the tests need root" >&2
  exit 2
fi
build=${BUILD_DIR:-build}
args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [[ ${SANITIZE:-0} == 1 ]]; then
  build=${BUILD_DIR:-build-asan}
  args+=(-DJAILPOOL_SANITIZE=ON -DJAILPOOL_BENCH=OFF)
fi
cmake -S . -B "$build" "${args[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure --timeout 300 "$@"
