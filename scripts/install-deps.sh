#!/usr/bin/env bash
# Installs what jailpool needs to build and test (Debian 12, as root). Idempotent: apt-get update
# runs only when something is missing.
#   scripts/install-deps.sh         build and test dependencies
#   scripts/install-deps.sh --vm    also qemu, busybox-static and a Debian 6.1 kernel for tests/vm/
# The kernel is not installed as a package (its postinst hooks want initramfs-tools and a
# bootloader): its .deb is downloaded and extracted into $JAILPOOL_VM_CACHE
# (default /var/cache/jailpool-vm), which leaves vmlinuz and config symlinks there.
set -euo pipefail

BUILD_PKGS=(build-essential cmake pkg-config protobuf-compiler libprotobuf-dev liburing-dev
  libseccomp-dev libboost-dev libgtest-dev libbenchmark-dev libcli11-dev libfmt-dev clang-format
  libgrpc++-dev protobuf-compiler-grpc python3-grpcio python3-protobuf libsystemd-dev
  libhiredis-dev redis-server)
VM_PKGS=(qemu-system-x86 busybox-static)
VM_CACHE="${JAILPOOL_VM_CACHE:-/var/cache/jailpool-vm}"

step() { echo "install-deps: $*"; }
die() {
  echo "install-deps: ERROR: $*" >&2
  exit 1
}

want_vm=0
for arg in "$@"; do
  case "$arg" in
    --vm) want_vm=1 ;;
    -h | --help)
      sed -n '2,8p' "$0"
      exit 0
      ;;
    *) die "unknown argument '$arg' (usage: $0 [--vm])" ;;
  esac
done

[[ $(id -u) -eq 0 ]] || die "must run as root"
command -v apt-get >/dev/null || die "apt-get not found (Debian/Ubuntu only)"
export DEBIAN_FRONTEND=noninteractive

updated=0
apt_update() {
  if [[ $updated -eq 0 ]]; then
    step "apt-get update"
    apt-get update -qq || die "apt-get update failed"
    updated=1
  fi
}

installed() { [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]; }

pkgs=("${BUILD_PKGS[@]}")
[[ $want_vm -eq 1 ]] && pkgs+=("${VM_PKGS[@]}")
missing=()
for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
if [[ ${#missing[@]} -eq 0 ]]; then
  step "all ${#pkgs[@]} packages already installed"
else
  apt_update
  step "apt-get install ${missing[*]}"
  # redis-server's postinst would start the system's Redis: the tests start their own (on a
  # socket in their directory) and nothing else must run. policy-rc.d 101 = "do not start".
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
  fi
  rc=0
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  [[ $own_policy -eq 1 ]] && rm -f "$policy"
  [[ $rc -eq 0 ]] || die "apt-get install failed for: ${missing[*]}"
fi

[[ $want_vm -eq 1 ]] || exit 0

# ---- VM kernel: Debian's linux-image-amd64, extracted rather than installed ----
if [[ -e "$VM_CACHE/vmlinuz" && -e "$VM_CACHE/config" ]]; then
  step "kernel already in $VM_CACHE ($(basename "$(readlink -f "$VM_CACHE/vmlinuz")"))"
else
  # The metapackage's candidate depends on exactly one versioned image package.
  resolve_kernel_pkg() {
    apt-cache show --no-all-versions linux-image-amd64 2>/dev/null |
      sed -n 's/^Depends:.*\(linux-image-[0-9][^ ,]*-amd64\).*/\1/p' | head -n1
  }
  kpkg=$(resolve_kernel_pkg)
  if [[ -z "$kpkg" ]]; then
    apt_update
    kpkg=$(resolve_kernel_pkg)
  fi
  [[ -n "$kpkg" ]] || die "cannot resolve linux-image-amd64 to a versioned kernel package"
  mkdir -p "$VM_CACHE/debs"
  step "apt-get download $kpkg into $VM_CACHE/debs"
  # (as root, apt warns that the download is unsandboxed: harmless)
  download() { (cd "$VM_CACHE/debs" && apt-get download -qq "$kpkg" 2>"$VM_CACHE/download.err"); }
  if ! download; then
    apt_update # a stale package list names a .deb the mirror no longer has
    download || die "apt-get download $kpkg failed: $(grep -v unsandboxed "$VM_CACHE/download.err")"
  fi
  rm -f "$VM_CACHE/download.err"
  debs=("$VM_CACHE/debs/${kpkg}"_*.deb)
  deb=${debs[-1]}
  [[ -f "$deb" ]] || die "apt-get download left no ${kpkg}_*.deb"
  step "dpkg-deb -x $(basename "$deb") into $VM_CACHE/root"
  rm -rf "$VM_CACHE/root.tmp"
  dpkg-deb -x "$deb" "$VM_CACHE/root.tmp" || die "dpkg-deb -x $deb failed"
  rm -rf "$VM_CACHE/root"
  mv "$VM_CACHE/root.tmp" "$VM_CACHE/root"
  kimgs=("$VM_CACHE"/root/boot/vmlinuz-*)
  kimg=${kimgs[0]}
  [[ -f "$kimg" ]] || die "no boot/vmlinuz-* in $deb"
  kver=${kimg##*/vmlinuz-}
  [[ -f "$VM_CACHE/root/boot/config-$kver" ]] || die "no config-$kver in $deb"
  ln -sfn "root/boot/vmlinuz-$kver" "$VM_CACHE/vmlinuz"
  ln -sfn "root/boot/config-$kver" "$VM_CACHE/config"
  ln -sfn "root/lib/modules/$kver" "$VM_CACHE/modules"
  rm -f "$deb"
  step "kernel $kver ready: $VM_CACHE/vmlinuz"
fi

# What the sandbox uses must be built in, except what tests/vm/run.sh loads (overlay.ko).
config="$VM_CACHE/config"
modules=() missing_opts=()
for opt in CGROUPS MEMCG CGROUP_PIDS CGROUP_SCHED CPUSETS NAMESPACES USER_NS PID_NS NET_NS UTS_NS \
  IPC_NS SECCOMP SECCOMP_FILTER IO_URING TMPFS DEVTMPFS OVERLAY_FS BLK_DEV_INITRD; do
  if grep -qx "CONFIG_${opt}=y" "$config"; then continue; fi
  if grep -qx "CONFIG_${opt}=m" "$config"; then modules+=("$opt"); else missing_opts+=("$opt"); fi
done
[[ ${#missing_opts[@]} -eq 0 ]] || die "kernel config lacks: ${missing_opts[*]}"
step "kernel config: cgroups, namespaces, seccomp, io_uring, tmpfs built in; modules: ${modules[*]:-none}"
