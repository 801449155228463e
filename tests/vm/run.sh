#!/usr/bin/env bash
# Runs jailpool's tests (or any command) as root inside a qemu VM: Debian's 6.1 kernel, pure
# cgroup v2, a RAM root built here from busybox, the host's /usr essentials and the build tree.
#
#   tests/vm/run.sh [options] [-- CMD [ARG...]]
#     --build DIR      build dir (default ./build); placed in the VM at its same absolute path
#     --source DIR     source dir (default: this repo): its configs/ and tests/ go in at the same
#                      path, and the command runs there
#     --kernel FILE    kernel image (default $JAILPOOL_VM_KERNEL, else ${JAILPOOL_VM_CACHE:-
#                      /var/cache/jailpool-vm}/vmlinuz from scripts/install-deps.sh --vm, else the
#                      newest /boot/vmlinuz-*)
#     --include PATH   also copy this host file or directory (same path; ELF libs follow); repeatable
#     --pkg NAME       also copy every file of this installed Debian package (coreutils dash bash
#                      grep sed findutils hostname procps are in by default); repeatable, e.g.
#                      --pkg python3.11-minimal --pkg libpython3.11-minimal --pkg libpython3.11-stdlib
#     --script FILE    run this shell script (the host's /bin/sh) instead of CMD
#     --timeout SEC    kill the VM after SEC seconds (default 900)
#     --mem MB         guest RAM (default 2048)       --smp N   guest CPUs (default 2)
#     --machine M      qemu machine type: q35 (default) or pc (microvm hangs calibrating the TSC under TCG)
#     --log FILE       console log (default <build>/vm-console.log)
#     --keep-initrd F  also copy the built initramfs to F
# Default CMD: <build>/tests/jailpool_tests --gtest_brief=1, then <build>/jailpool check.
# Accelerator: KVM when /dev/kvm (or $JAILPOOL_VM_KVM_DEV) is writable, falling back to TCG
# (software emulation) when qemu cannot start under it; JAILPOOL_VM_ACCEL=kvm|tcg forces one.
# Exit status: the command's (from the "JAILPOOL-VM-EXIT=<code>" console line), 1 when that
# line is missing (timeout, crash), 2 when the VM cannot be set up or started; with
# JAILPOOL_VM_OPTIONAL=1 a missing qemu or kernel prints "SKIP: <reason>" and exits 0.
set -euo pipefail
umask 022 # the VM's tree must be readable by the sandbox's unprivileged uid

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=./build
source_dir=$(cd "$here/../.." && pwd)
kernel=${JAILPOOL_VM_KERNEL:-}
timeout_s=900
mem=2048
smp=2
machine=q35
log=
script=
keep_initrd=
includes=()
pkgs=(coreutils dash bash grep sed findutils hostname procps) # host packages copied whole
cmd=()
modules=(overlay) # loadable modules of Debian's config that the sandbox may use

say() { echo "vm: $*" >&2; }
fail() {
  echo "vm: ERROR: $*" >&2
  exit 2
}
skip() {
  if [[ ${JAILPOOL_VM_OPTIONAL:-0} == 1 ]]; then
    echo "SKIP: $*"
    exit 0
  fi
  fail "$* (install with: scripts/install-deps.sh --vm; JAILPOOL_VM_OPTIONAL=1 makes this a skip)"
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --build | --source | --kernel | --include | --pkg | --script | --timeout | --mem | --smp | --machine | --log | \
      --keep-initrd)
      [[ $# -ge 2 ]] || fail "$1 needs a value" ;;
  esac
  case "$1" in
    --build) build=$2; shift 2 ;;
    --source) source_dir=$2; shift 2 ;;
    --kernel) kernel=$2; shift 2 ;;
    --include) includes+=("$2"); shift 2 ;;
    --pkg) pkgs+=("$2"); shift 2 ;;
    --script) script=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --smp) smp=$2; shift 2 ;;
    --machine) machine=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    --keep-initrd) keep_initrd=$2; shift 2 ;;
    --) shift; cmd=("$@"); break ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) fail "unknown option '$1' (see --help)" ;;
  esac
done

# ---- what is needed on the host ----
qemu=$(command -v qemu-system-x86_64 || true)
[[ -n "$qemu" ]] || skip "qemu-system-x86_64 not found"
if [[ -z "$kernel" ]]; then
  if [[ -e "${JAILPOOL_VM_CACHE:-/var/cache/jailpool-vm}/vmlinuz" ]]; then
    kernel="${JAILPOOL_VM_CACHE:-/var/cache/jailpool-vm}/vmlinuz"
  else
    kernel=$(printf '%s\n' /boot/vmlinuz-* | sort -V | tail -n1)
    [[ -e "$kernel" ]] || kernel=
  fi
fi
[[ -n "$kernel" && -r "$kernel" ]] || skip "no kernel image ${kernel:+$kernel }(looked at --kernel, \$JAILPOOL_VM_KERNEL, /var/cache/jailpool-vm/vmlinuz, /boot/vmlinuz-*)"
kernel=$(readlink -f "$kernel")
busybox=$(command -v busybox || true)
if [[ -z "$busybox" ]] || ldd "$busybox" >/dev/null 2>&1; then
  skip "no static busybox (package busybox-static)"
fi
kmoddir=
for d in "$(dirname "$kernel")/../lib/modules" /lib/modules; do
  kv=$(basename "$kernel"); kv=${kv#vmlinuz-}
  if [[ -d "$d/$kv" ]]; then kmoddir=$(cd "$d/$kv" && pwd); break; fi
done

[[ -d "$build" ]] || fail "build dir '$build' not found"
build=$(cd "$build" && pwd)
source_dir=$(cd "$source_dir" && pwd)
[[ -n "$log" ]] || log="$build/vm-console.log"
if [[ -n "$script" ]]; then
  [[ -r "$script" ]] || fail "script '$script' not readable"
elif [[ ${#cmd[@]} -eq 0 ]]; then
  for f in "$build/tests/jailpool_tests" "$build/jailpool"; do
    [[ -x "$f" ]] || fail "$f not built (build first, or pass -- CMD)"
  done
fi

work=$(mktemp -d /tmp/jailpool-vm.XXXXXX)
qpid='' tpid=''
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  if [[ -n "$qpid" ]] && kill -0 "$qpid" 2>/dev/null; then
    kill "$qpid" 2>/dev/null || true # timeout(1) forwards it to qemu
    wait "$qpid" 2>/dev/null || true
  fi
  if [[ -n "$tpid" ]]; then kill "$tpid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
root="$work/root"
mkdir -p "$root"

# ---- the root filesystem ----
# Host layout (merged /usr): /bin, /sbin, /lib, /lib64 are symlinks into /usr.
for l in bin sbin lib lib64 lib32 libx32; do
  if [[ -L /$l && -d /$l ]]; then
    ln -s "$(readlink /$l)" "$root/$l"
    mkdir -p "$root/$(readlink -f /$l)"
  fi
done
mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,etc,proc,sys,dev,tmp,run,root,mnt,var/tmp}
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 700 "$root/root"

declare -A added=() realdir=()
copies=() # regular files, canonical host paths
elfs=() # dynamic ELF files whose libraries add_libs copies (one ldd run for all)
# add PATH [nolibs]: copy a host file, symlink or directory to the same path; ELF files are queued
# for add_libs (but not libraries from ldd's list, which is already a closure: nolibs).
add() {
  local p=$1 flag=${2:-}
  [[ -e "$p" || -L "$p" ]] || { say "warning: $p does not exist, skipped"; return 0; }
  local dir=${p%/*} base=${p##*/}
  [[ -n "$dir" ]] || dir=/
  if [[ -z "${realdir[$dir]:-}" ]]; then realdir[$dir]=$(cd "$dir" && pwd -P); fi
  dir=${realdir[$dir]} # host symlinks in the parent (/lib -> usr/lib) exist in $root too
  p=${dir%/}/$base
  [[ -z "${added[$p]:-}" ]] || return 0
  added[$p]=1
  local dst="$root$p"
  [[ -d "$root$dir" ]] || mkdir -p "$root$dir"
  if [[ -L "$p" ]]; then
    [[ -e "$dst" || -L "$dst" ]] || ln -s "$(readlink "$p")" "$dst"
    if [[ -e "$p" ]]; then add "$(readlink -f "$p")" "$flag"; fi
  elif [[ -d "$p" ]]; then
    mkdir -p "$dst"
    local e
    for e in "$p"/* "$p"/.[!.]*; do if [[ -e "$e" || -L "$e" ]]; then add "$e" "$flag"; fi; done
  else
    copies+=("$p") # copied in one go by copy_all
    local magic=
    IFS= read -r -n 4 magic <"$p" 2>/dev/null || true
    if [[ $flag != nolibs && $magic == $'\x7fELF' ]]; then elfs+=("$p"); fi
  fi
  return 0
}
copy_all() {
  [[ ${#copies[@]} -eq 0 ]] || printf '%s\0' "${copies[@]}" | xargs -0 cp -a --parents -t "$root" --
}
# add_pkg NAME: every file of an installed Debian package, less its documentation.
add_pkg() {
  local f files
  files=$(dpkg-query -L "$1" 2>/dev/null) || fail "package $1 is not installed (--pkg)"
  while IFS= read -r f; do
    case $f in /usr/share/doc/* | /usr/share/man/* | /usr/share/info/* | /usr/share/locale/* | \
      /usr/share/lintian/* | /usr/share/doc-base/* | /usr/share/bug/* | /usr/share/bash-completion/*) continue ;;
    esac
    # (not directories, nor symlinks to them: merged-/usr's /bin would bring all of /usr/bin)
    if [[ ! -d "$f" ]] && [[ -L "$f" || -f "$f" ]]; then add "$f"; fi
  done <<<"$files"
}
add_libs() {
  [[ ${#elfs[@]} -gt 0 ]] || return 0
  # What ldd prints, but faster (ldd costs ~0.1 s a file here): one readelf over all files, then
  # the loader's trace once per distinct (interpreter, NEEDED, RPATH/RUNPATH) set.
  local trace
  if command -v readelf >/dev/null; then
    local -A key=() seen=()
    local f='' line k
    while IFS= read -r line; do
      case $line in
        "File: "*) f=${line#File: }; key[$f]= ;;
        *"program interpreter: "*) k=${line#*interpreter: }; key[$f]="${k%]}|${key[$f]}" ;;
        *"(NEEDED)"* | *"(RPATH)"* | *"(RUNPATH)"*)
          key[$f]+="${line##*: } "
          if [[ $line == *ORIGIN* ]]; then key[$f]+="${f%/*} "; fi ;;
      esac
    done < <(readelf -ldW "${elfs[@]}" "${elfs[0]}" 2>/dev/null || true)
    trace=$(for f in "${!key[@]}"; do
      k=${key[$f]}
      [[ -n "$k" && -z "${seen[$k]:-}" ]] || continue # static, or same libraries as another
      seen[$k]=1
      local interp=/lib64/ld-linux-x86-64.so.2 # shared libraries have none of their own
      if [[ $k == /*"|"* ]]; then interp=${k%%|*}; fi
      LD_TRACE_LOADED_OBJECTS=1 "$interp" "$f" 2>&1 || true
    done)
  else
    trace=$(ldd "${elfs[@]}" 2>&1 || true)
  fi
  local lib
  # "libx.so => /path (0x...)" and the loader's own "/lib64/ld-linux-x86-64.so.2 (0x...)"
  while read -r line; do
    lib=
    if [[ $line == *" => /"* ]]; then lib=${line#* => }; lib=${lib%% (*}
    elif [[ $line == /* && $line != *: ]]; then lib=${line%% (*}; fi
    if [[ -n "$lib" ]]; then add "$lib" nolibs; fi
    if [[ $line == *"not found"* ]]; then say "warning: missing library: $line"; fi
  done <<<"$trace"
  return 0
}

say "building initramfs in $work"
# busybox runs /init; its applets live under /usr so that sandboxes binding /usr see them too.
bbdir=/usr/lib/jailpool-vm
mkdir -p "$root$bbdir/bin"
cp "$busybox" "$root$bbdir/busybox"
"$busybox" --list | perl -e 'my $d = shift; while (<STDIN>) { chomp; symlink("../busybox", "$d/$_") or die "$_: $!\n" }' "$root$bbdir/bin" ||
  fail "cannot create the busybox applet links"

# Host programs the tests run in the sandbox (the default profile binds /usr, /lib*, /etc/...):
# whole packages, so that every coreutils program works, plus the --pkg ones.
for p in "${pkgs[@]}"; do add_pkg "$p"; done
add /usr/bin/sh
for f in passwd group nsswitch.conf ld.so.cache ld.so.conf ld.so.conf.d localtime hosts; do
  if [[ -e /etc/$f ]]; then add "/etc/$f"; fi
done
mkdir -p "$root/etc/alternatives" # the host's is large and mostly dangling here
echo jailpool-vm >"$root/etc/hostname"

# The build tree and configs, at the same absolute paths (compiled into the test binary).
for f in "$build/jailpool" "$build/tests/jailpool_tests"; do if [[ -e "$f" ]]; then add "$f"; fi; done
if [[ -d "$build/tests/progs" ]]; then add "$build/tests/progs"; fi
for d in configs tests; do # profiles and any test data the tests read from the source tree
  if [[ -d "$source_dir/$d" ]]; then add "$source_dir/$d"; fi
done
for p in ${includes[@]+"${includes[@]}"}; do add "$(realpath -s "$p")"; done
add_libs
copy_all

# Kernel modules of features that Debian builds as modules (no dependencies among these).
mods=()
if [[ -n "$kmoddir" ]]; then
  mkdir -p "$root/lib/modules"
  for m in "${modules[@]}"; do
    ko=$(find "$kmoddir/kernel" -name "$m.ko" -print -quit)
    [[ -n "$ko" ]] || continue
    cp "$ko" "$root/lib/modules/$m.ko"
    mods+=("$m")
  done
fi

# The command, as a script run by the host's /bin/sh.
quote() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }
{
  echo "cd $(quote "$source_dir") || exit 125"
  if [[ -n "$script" ]]; then
    cat "$script"
  elif [[ ${#cmd[@]} -gt 0 ]]; then
    for a in "${cmd[@]}"; do printf '%s ' "$(quote "$a")"; done
    echo
  else
    echo "$(quote "$build/tests/jailpool_tests") --gtest_brief=1; rc=\$?"
    echo "$(quote "$build/jailpool") check; rc2=\$?"
    echo "[ \$rc -ne 0 ] && exit \$rc; exit \$rc2"
  fi
} >"$root/run-tests.sh"

cat >"$root/init" <<EOF
#!$bbdir/bin/sh
# Stage 1 (on the initramfs rootfs, which pivot_root(2) refuses): copy the root into a tmpfs and
# switch_root to it. Stage 2: mount the API filesystems, pure cgroup v2, run /run-tests.sh.
export PATH=$bbdir/bin
if [ "\$\$" = 1 ] && [ ! -e /.stage2 ]; then
  mount -t proc proc /proc
  mkdir -p /newroot
  mount -t tmpfs -o mode=0755 root /newroot
  for e in /* /.[!.]*; do
    case "\$e" in /newroot|/proc|/sys|/dev) ;; *) { [ -e "\$e" ] || [ -L "\$e" ]; } && cp -a "\$e" /newroot/ ;; esac
  done
  mkdir -p /newroot/proc /newroot/sys /newroot/dev
  touch /newroot/.stage2
  umount /proc
  exec switch_root /newroot /init
fi
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
ln -sf /proc/self/fd /dev/fd; ln -sf fd/0 /dev/stdin; ln -sf fd/1 /dev/stdout; ln -sf fd/2 /dev/stderr
[ -n "\$(ls -A /tmp)" ] || mount -t tmpfs -o mode=1777 tmpfs /tmp # keeps included files under /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
mount --make-rshared / # like a systemd host
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup
for c in cpuset cpu io memory pids; do
  echo "+\$c" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || echo "vm: cannot enable \$c"
done
for m in ${mods[*]}; do insmod /lib/modules/\$m.ko || echo "vm: insmod \$m failed"; done
ip link set lo up
hostname jailpool-vm
echo "vm: kernel \$(uname -r), cgroup2 controllers: \$(cat /sys/fs/cgroup/cgroup.controllers), subtree: \$(cat /sys/fs/cgroup/cgroup.subtree_control), cpus \$(nproc), mem \$(awk '/MemTotal/{print \$2}' /proc/meminfo) kB"
export HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$bbdir/bin
# The host's /bin/sh (busybox sh would run its own applets in place of the host's programs).
sh=/bin/sh; [ -x \$sh ] || sh=$bbdir/bin/sh
\$sh /run-tests.sh </dev/null
rc=\$?
sync
echo "JAILPOOL-VM-EXIT=\$rc"
poweroff -f
EOF
chmod 755 "$root/init" "$root/run-tests.sh"

initrd="$work/initrd.img"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | "$busybox" cpio -o -H newc 2>/dev/null) | gzip -1 >"$initrd"
say "initramfs $(du -h "$initrd" | cut -f1) ($(du -sh "$root" | cut -f1) unpacked), kernel $kernel"
[[ -z "$keep_initrd" ]] || cp "$initrd" "$keep_initrd"
rm -rf "$root"

# ---- boot ----
# The accelerator: JAILPOOL_VM_ACCEL=kvm|tcg forces one; by default KVM when /dev/kvm is
# writable, then TCG (software emulation) when qemu cannot start under KVM. A /dev/kvm can exist
# and still fail: nested virtualization on cloud VMs often stops qemu before the guest prints a
# byte ("failed to set MSR 0x10a", then an assertion in kvm.c, exit 134).
case "${JAILPOOL_VM_ACCEL:-}" in
  kvm) accels=(kvm) ;;
  tcg) accels=(tcg) ;;
  '')
    accels=(tcg)
    if [[ -w ${JAILPOOL_VM_KVM_DEV:-/dev/kvm} ]]; then accels=(kvm tcg); fi
    ;;
  *) fail "JAILPOOL_VM_ACCEL must be kvm or tcg, not '${JAILPOOL_VM_ACCEL}'" ;;
esac
mkdir -p "$(dirname "$log")"

# boot ACCEL: runs the VM to its end; sets qrc (qemu's exit status) and elapsed.
boot() {
  local accel=$1
  : >"$log"
  : >"$work/qemu.out"
  start=$EPOCHREALTIME
  say "booting ($machine, $accel, $smp cpus, $mem MiB, timeout ${timeout_s}s), console log $log"
  timeout --kill-after=10 "$timeout_s" "$qemu" -machine "$machine,accel=$accel" -cpu max -smp "$smp" -m "$mem" \
    -nodefaults -no-user-config -display none -no-reboot \
    -chardev file,id=con,path="$log" -serial chardev:con \
    -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyS0 rdinit=/init quiet panic=-1 oops=panic" \
    </dev/null >"$work/qemu.out" 2>&1 &
  qpid=$!
  # Stream the console; in the background so that INT/TERM run the trap at once.
  tail -n +1 -f --pid="$qpid" "$log" 2>/dev/null &
  tpid=$!
  qrc=0
  wait "$qpid" || qrc=$?
  qpid=
  wait "$tpid" || true
  tpid=
  elapsed=$(awk "BEGIN{printf \"%.1f\", $EPOCHREALTIME - $start}")
  [[ ! -s "$work/qemu.out" ]] || sed 's/^/qemu: /' "$work/qemu.out" >&2
}

for ((i = 0; i < ${#accels[@]}; i++)); do
  accel=${accels[i]}
  boot "$accel"
  # qemu failed before the guest wrote anything: the accelerator did not work; try the next.
  if [[ $qrc -ne 0 && $qrc -ne 124 && $qrc -ne 137 && ! -s "$log" && $((i + 1)) -lt ${#accels[@]} ]]; then
    say "qemu could not start under $accel (exit $qrc: $(head -n1 "$work/qemu.out")); falling back to ${accels[i + 1]}"
    continue
  fi
  break
done

marker=$(tr -d '\r' <"$log" | grep -ao 'JAILPOOL-VM-EXIT=[0-9]*' | tail -n1 || true)
if [[ -z "$marker" ]]; then
  if [[ $qrc -ne 0 && $qrc -ne 124 && $qrc -ne 137 && ! -s "$log" ]]; then
    skip "qemu failed to start under $accel (exit $qrc): $(head -n1 "$work/qemu.out")"
  elif [[ $qrc -eq 124 || $qrc -eq 137 ]]; then
    say "timed out after ${timeout_s}s under $accel: no JAILPOOL-VM-EXIT line"
  else
    say "qemu exited with $qrc under $accel and no JAILPOOL-VM-EXIT line (see $log)"
  fi
  exit 1
fi
rc=${marker#JAILPOOL-VM-EXIT=}
say "command exited with $rc under $accel; boot+run took $elapsed s"
exit "$rc"
