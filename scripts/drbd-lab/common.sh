# Shared settings for the drbd-lab scripts (sourced, not run).
# The cache holds the Debian kernel and the initramfs, keyed by kernel version,
# so only the first run downloads and builds anything.
LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -n "${DRBD_LAB_CACHE:-}" ]; then
  LAB_CACHE="$DRBD_LAB_CACHE"
elif [ -n "${XDG_CACHE_HOME:-}" ]; then
  LAB_CACHE="$XDG_CACHE_HOME/drbd-bisync-lab"
else
  LAB_CACHE=/var/cache/drbd-bisync-lab
fi

# Modules the guest loads, in this order after their dependencies.
# dm_mod: LVM on the DRBD device (linear and striped targets are built into it).
LAB_MODULES="virtio_pci virtio_blk virtio_net 9pnet_virtio 9p crc32c_generic libcrc32c lru_cache drbd dm_mod"

die() { echo "drbd-lab: $*" >&2; exit 1; }
