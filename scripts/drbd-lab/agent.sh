#!/bin/bash
# Guest side of the lab's command channel (runs as the guest's first process,
# with the host's root as its read-only root and the lab share at /run/lab).
# The host drops cmd/<id>.sh; the agent runs each in the background and leaves
# its output in out/<id> and, when it ends, its exit status in out/<id>.rc.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
share=/run/lab
arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^lab\.$1=//p"; }
node="$(arg node)"
hostname "$node"
mount -t tmpfs tmpfs /dev/shm 2>/dev/null || { mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm; }
ip link set lo up
nic="$(ls /sys/class/net | grep -v '^lo$' | head -1)"
ip link set "$nic" up
ip addr add "$(arg ip)" dev "$nic"
mkdir -p "$share/cmd" "$share/run" "$share/out"
echo "$node $(uname -r)" >"$share/ready"
cd "$share"
# Everything in the loop is a bash builtin or a fork (no exec): under emulation
# each exec costs tens of milliseconds.
exec {tick}<> <(:)
shopt -s nullglob
while :; do
  for f in cmd/*.sh; do
    id="${f#cmd/}"
    id="${id%.sh}"
    mv "$f" "run/$id.sh"
    (
      (source "run/$id.sh") >"out/$id" 2>&1 </dev/null
      echo $? >"out/$id.rc.tmp"
      mv "out/$id.rc.tmp" "out/$id.rc"
    ) &
  done
  read -r -t 0.05 -u "$tick"
done
