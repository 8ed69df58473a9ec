#!/usr/bin/env bash
# Layer (b): boot one lab guest in the foreground (kill the process to pull the plug).
#   guest.sh NAME DISK SHARE_DIR IP/PREFIX NET
# NET is qemu's socket netdev on 127.0.0.1, so two guests share a private link
# and the host sees only loopback traffic: "udp:MYPORT:PEERPORT" (either side
# may restart), or "listen:PORT" / "connect:PORT" (TCP; the connecting side
# cannot reconnect after its peer restarts).
# The console goes to SHARE_DIR/console.log; the agent writes SHARE_DIR/ready.
set -euo pipefail
source "$(dirname "$0")/common.sh"
[ $# -eq 5 ] || die "usage: guest.sh NAME DISK SHARE_DIR IP/PREFIX udp:MYPORT:PEERPORT|listen:PORT|connect:PORT"
name="$1" disk="$2" share="$3" ip="$4" net="$5"
[ -f "$disk" ] || [ -b "$disk" ] || die "disk $disk does not exist"
[ -d "$share" ] || die "share folder $share does not exist"
case "$net" in
  udp:*:*) IFS=: read -r _ myport peerport <<<"$net"
           netdev="socket,id=net0,udp=127.0.0.1:$peerport,localaddr=127.0.0.1:$myport" ;;
  listen:*|connect:*) netdev="socket,id=net0,${net%%:*}=127.0.0.1:${net#*:}" ;;
  *) die "NET must be udp:MYPORT:PEERPORT, listen:PORT or connect:PORT, not $net" ;;
esac
eval "$("$LAB_DIR/initramfs.sh")"
project="$(cd "$LAB_DIR/../.." && pwd)"
cp "$LAB_DIR/agent.sh" "$share/agent.sh"
rm -rf "$share/ready" "$share/cmd" "$share/run" "$share/out"
mac="52:54:00:12:34:$(printf '%02x' "$(( $(cksum <<<"$name" | cut -d' ' -f1) % 256 ))")"
exec qemu-system-x86_64 \
  -name "drbd-lab-$name" -machine pc,accel=tcg -cpu max -smp 1 -m "${DRBD_LAB_MEM:-768}" \
  -nodefaults -no-user-config -display none -no-reboot \
  -kernel "$KERNEL" -initrd "$INITRD" \
  -append "console=ttyS0 panic=-1 quiet lab.node=$name lab.ip=$ip lab.project=$project" \
  -serial "file:$share/console.log" \
  -drive "file=$disk,format=raw,if=none,id=disk0,cache=writeback,aio=threads" \
  -device virtio-blk-pci,drive=disk0 \
  -virtfs local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap \
  -virtfs "local,path=$share,mount_tag=lab,security_model=passthrough" \
  -netdev "$netdev" \
  -device "virtio-net-pci,netdev=net0,mac=$mac,romfile="
