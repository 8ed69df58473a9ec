#!/bin/busybox sh
# /init of a lab guest (runs from the initramfs, busybox only).
# Loads the modules, mounts the host's root read-only over 9p as the new root,
# gives it the writable places DRBD and the tools need, and hands over to the
# agent on the read-write share.
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /newroot
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.order); do
  insmod "/modules/$m" || echo "drbd-lab: insmod $m failed"
done
fail() { echo "drbd-lab: $*"; poweroff -f; }
# cache=loose: the host's root does not change while the guest runs, and node
# starts several times faster when 9p may cache.
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /newroot || fail "cannot mount the host root"
# The project may live under a folder the guest covers with tmpfs (a clone
# in /tmp): keep it visible at the same path.
project=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^lab\.project=//p')
mkdir -p /project
[ -n "$project" ] && [ -d "/newroot$project" ] && mount --bind "/newroot$project" /project
for d in tmp run var/lib/drbd etc/drbd.d; do
  [ -d "/newroot/$d" ] && mount -t tmpfs -o mode=0755 tmpfs "/newroot/$d"
done
chmod 1777 /newroot/tmp
if grep -q ' /project ' /proc/mounts; then
  if [ -d "/newroot$project" ]; then umount /project
  else mkdir -p "/newroot$project" && mount --move /project "/newroot$project"; fi
fi
mkdir -p /newroot/run/lock /newroot/run/lab
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 lab /newroot/run/lab || fail "cannot mount the lab share"
for d in dev proc sys; do mount --move "/$d" "/newroot/$d"; done
[ -x /newroot/bin/bash ] || fail "no /bin/bash on the host root"
exec switch_root /newroot /bin/bash /run/lab/agent.sh
