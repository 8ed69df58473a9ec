#!/usr/bin/env bash
# Layer (a2): build the guest initramfs (busybox-static, the lab modules, /init).
# Cached beside the kernel, keyed by the content of the init script and busybox.
# Prints: KERNEL=<vmlinuz> INITRD=<initramfs> (one per line).
set -euo pipefail
source "$(dirname "$0")/common.sh"

kdir="$("$LAB_DIR/kernel.sh")"
busybox="${DRBD_LAB_BUSYBOX:-/bin/busybox}"
[ -x "$busybox" ] || die "no busybox at $busybox (install busybox-static)"
key="$(cat "$LAB_DIR/guest-init.sh" "$busybox" "$kdir/modules.order" | sha256sum | cut -c1-16)"
out="$kdir/initramfs-$key.cpio.gz"
if [ ! -f "$out" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/bin" "$work/modules"
  cp "$busybox" "$work/bin/busybox"
  cp "$LAB_DIR/guest-init.sh" "$work/init"
  chmod 755 "$work/init"
  cp "$kdir/modules/"*.ko "$work/modules/"
  cp "$kdir/modules.order" "$work/modules.order"
  (cd "$work" && find . | "$busybox" cpio -o -H newc 2>/dev/null | gzip -1 >"$out.tmp")
  mv "$out.tmp" "$out"
fi
echo "KERNEL=$kdir/vmlinuz"
echo "INITRD=$out"
