#!/usr/bin/env bash
# Tests tests/vm/run.sh's choice of accelerator with a stand-in qemu: one that fails under KVM
# before the guest prints anything (as nested virtualization does on cloud VMs: "failed to set
# MSR 0x10a", exit 134), and "boots" under TCG by writing the exit marker to the console file.
# Checks: KVM tried first where the device is writable, the fallback to TCG, the forced choices
# (JAILPOOL_VM_ACCEL), and that a bad value is refused. Skips without a static busybox (run.sh
# needs one to build its initramfs).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
busybox=$(command -v busybox || true)
if [[ -z "$busybox" ]] || ldd "$busybox" >/dev/null 2>&1; then
  echo "SKIP: no static busybox (package busybox-static)"
  exit 0
fi
dir=$(mktemp -d /tmp/jailpool-vm-accel.XXXXXX)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/bin" "$dir/build"
cat >"$dir/bin/qemu-system-x86_64" <<'QEMU'
#!/usr/bin/env bash
# Stand-in qemu: records the accelerator it was asked for; KVM fails, TCG "boots".
accel='' con=''
while [[ $# -gt 0 ]]; do
  case "$1" in
    -machine) accel=${2##*accel=}; shift 2 ;;
    -chardev) con=${2##*path=}; shift 2 ;;
    *) shift ;;
  esac
done
echo "$accel" >>"$FAKE_QEMU_LOG"
if [[ $accel == kvm ]]; then
  echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69" >&2
  exit 134
fi
printf 'booted\r\nJAILPOOL-VM-EXIT=7\r\n' >"$con"
QEMU
chmod 755 "$dir/bin/qemu-system-x86_64"
echo 'not a kernel' >"$dir/vmlinuz"
: >"$dir/kvm" # a writable stand-in for /dev/kvm
export FAKE_QEMU_LOG="$dir/accels"

fails=0
# expect NAME WANT_RC WANT_ACCELS [ENV...]: runs run.sh with the stand-in and checks its exit code
# and the accelerators qemu was started with, in order.
expect() {
  local name=$1 want_rc=$2 want_accels=$3 rc=0
  shift 3
  : >"$FAKE_QEMU_LOG"
  env "$@" PATH="$dir/bin:$PATH" JAILPOOL_VM_OPTIONAL=0 "$here/run.sh" --build "$dir/build" \
    --kernel "$dir/vmlinuz" --timeout 30 -- /bin/true >"$dir/out" 2>&1 || rc=$?
  local got
  got=$(paste -sd, "$FAKE_QEMU_LOG")
  if [[ $rc -ne $want_rc || $got != "$want_accels" ]]; then
    echo "FAIL $name: exit $rc (want $want_rc), accelerators '$got' (want '$want_accels')"
    sed 's/^/  | /' "$dir/out"
    fails=$((fails + 1))
  else
    echo "ok   $name"
  fi
}
expect "broken KVM falls back to TCG" 7 kvm,tcg JAILPOOL_VM_KVM_DEV="$dir/kvm"
if ! grep -q 'could not start under kvm .*falling back to tcg' "$dir/out" ||
  ! grep -q 'exited with 7 under tcg' "$dir/out"; then
  echo "FAIL the fallback is not said: $(cat "$dir/out")"
  fails=$((fails + 1))
fi
expect "no KVM device: TCG only" 7 tcg JAILPOOL_VM_KVM_DEV="$dir/missing"
expect "forced TCG skips KVM" 7 tcg JAILPOOL_VM_KVM_DEV="$dir/kvm" JAILPOOL_VM_ACCEL=tcg
expect "forced KVM does not fall back" 2 kvm JAILPOOL_VM_KVM_DEV="$dir/kvm" JAILPOOL_VM_ACCEL=kvm
expect "bad JAILPOOL_VM_ACCEL is refused" 2 "" JAILPOOL_VM_ACCEL=hvf
[[ $fails -eq 0 ]] || exit 1
echo "5 passed, 0 failed"
