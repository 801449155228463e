#!/bin/sh
# The cost of one sandboxed run, against its peers: sequential single runs of a static no-op,
# one sandbox process per job, as a judge that starts a sandbox per test does. One tiny C driver
# (bench/driver.c: fork, exec, wait) runs every runner N times in a row; the runners take turns
# (interleaved rounds: the machine may be shared and noisy) and each gets the median of its
# rounds, in jobs/s and as a multiple of the bare program's time measured in the same rounds.
#
#   bench/peers.sh [-n RUNS] [-r ROUNDS] [-b BUILD_DIR] [-o ONLY] [EXTRA_RUNNER...]
#
# Runners: bare, bwrap, nsjail, isolate (each skipped when not installed), jailpool (run, the
# default profile). Run as root. An EXTRA_RUNNER is NAME=COMMAND, run with the noop's path
# appended (e.g. "old=/tmp/jailpool-old run --bind %NOOP%:/noop -- /noop"; %NOOP% is replaced,
# and then nothing is appended): A/B of two builds in the same rounds. -o keeps only the runners
# named (comma-separated, bare always runs).
set -eu

runs=1000
rounds=3
build=
only=
while getopts n:r:b:o: opt; do
  case $opt in
    n) runs=$OPTARG ;;
    r) rounds=$OPTARG ;;
    b) build=$OPTARG ;;
    o) only=$OPTARG ;;
    *) echo "usage: $0 [-n RUNS] [-r ROUNDS] [-b BUILD_DIR] [-o ONLY] [NAME=COMMAND...]" >&2
       exit 2 ;;
  esac
done
shift $((OPTIND - 1))

here=$(cd "$(dirname "$0")" && pwd)
[ -n "$build" ] || build=$here/../build
build=$(cd "$build" && pwd)
noop=$build/bench/noop
jailpool=$build/jailpool
[ -x "$noop" ] || { echo "peers.sh: no $noop (build the project first)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "peers.sh: run as root" >&2; exit 2; }

work=$(mktemp -d /tmp/jailpool-peers.XXXXXX)
isolate_box=
cleanup() {
  [ -z "$isolate_box" ] || isolate --box-id=97 --cleanup >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

driver=$work/driver
${CC:-cc} -O2 -o "$driver" "$here/driver.c"

# name|command (the command's words are split on spaces: no path here may contain one).
list=$work/runners
wanted() { [ -z "$only" ] || [ "$1" = bare ] || case ",$only," in *",$1,"*) true ;; *) false ;; esac; }
add() { if wanted "$1"; then printf '%s|%s\n' "$1" "$2" >>"$list"; fi; }
skip() { if wanted "$1"; then echo "skipped $1: $2"; fi; }
add bare "$noop"
if command -v bwrap >/dev/null 2>&1; then
  add bwrap "bwrap --unshare-all --ro-bind /usr /usr --ro-bind $noop /noop --proc /proc --dev /dev --tmpfs /tmp /noop"
else
  skip bwrap "not installed (Debian: bubblewrap)"
fi
if command -v nsjail >/dev/null 2>&1; then
  # New user, net, mnt, pid, ipc, uts and cgroup namespaces (its defaults), no seccomp.
  add nsjail "nsjail -Mo --quiet -R /usr -R $noop:/noop -- /noop"
else
  skip nsjail "not installed"
fi
if command -v isolate >/dev/null 2>&1 && wanted isolate; then
  if box=$(isolate --box-id=97 --init 2>/dev/null); then
    isolate_box=$box
    cp "$noop" "$box/box/noop"
    add isolate "isolate --box-id=97 --run -- ./noop"
  else
    skip isolate "isolate --init failed"
  fi
else
  skip isolate "not installed"
fi
if [ -x "$jailpool" ]; then
  add jailpool "$jailpool run --bind $noop:/noop -- /noop"
else
  skip jailpool "no $jailpool"
fi
for extra in "$@"; do
  name=${extra%%=*}
  cmd=${extra#*=}
  case $cmd in
    *%NOOP%*) cmd=$(printf '%s' "$cmd" | sed "s|%NOOP%|$noop|g") ;;
    *) cmd="$cmd $noop" ;;
  esac
  printf '%s|%s\n' "$name" "$cmd" >>"$list"
done

# Every runner once first: one that fails is reported now, not timed.
while IFS='|' read -r name cmd; do
  # shellcheck disable=SC2086
  if ! $cmd </dev/null >/dev/null 2>"$work/err"; then
    echo "peers.sh: $name fails: $cmd" >&2
    cat "$work/err" >&2
    exit 1
  fi
done <"$list"

echo "$runs sequential runs per round, $rounds rounds, interleaved; $(uname -r), $(nproc) CPUs"
r=1
while [ "$r" -le "$rounds" ]; do
  while IFS='|' read -r name cmd; do
    # shellcheck disable=SC2086
    out=$("$driver" "$runs" $cmd </dev/null)
    echo "$name $out" >>"$work/times"
    awk -v r="$r" -v name="$name" -v n="$runs" -v out="$out" 'BEGIN { split(out, t, " ");
      printf "  round %d %-10s %8.1f jobs/s %8.0f us CPU per run\n", r, name, n / t[1], t[2] / n * 1e6 }'
  done <"$list"
  r=$((r + 1))
done

# Column $2 (wall seconds) or $3 (CPU seconds) of a runner's rounds: the median.
median() { grep "^$1 " "$work/times" | awk -v c="$2" '{print $c}' | sort -g | awk '{a[NR]=$1} END {
  if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
bare=$(median bare 2)
printf '\n%-10s %10s %8s %12s %12s\n' runner "jobs/s" "x bare" "us per run" "CPU us/run"
while IFS='|' read -r name cmd; do
  awk -v n="$runs" -v m="$(median "$name" 2)" -v c="$(median "$name" 3)" -v b="$bare" \
    -v name="$name" \
    'BEGIN { printf "%-10s %10.0f %8.2f %12.0f %12.0f\n", name, n / m, m / b, m / n * 1e6, c / n * 1e6 }'
done <"$list"
echo "(medians of the rounds; CPU: user + system of the runner and its processes, not kernel"
echo " threads' deferred work such as a network namespace's teardown)"
