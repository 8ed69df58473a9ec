#!/usr/bin/env bash
# Layer (a1): fetch the Debian kernel that linux-image-amd64 points to and keep
# only what the guest needs: vmlinuz and the modules the lab loads (with deps).
# Prints the kernel's cache folder (holds vmlinuz, modules/, modules.order, version).
set -euo pipefail
source "$(dirname "$0")/common.sh"

pkg="${DRBD_LAB_KERNEL_PKG:-$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')}"
[ -n "$pkg" ] || die "cannot find the kernel package behind linux-image-amd64 (run apt-get update?)"
ver="$(apt-cache show --no-all-versions "$pkg" | awk '/^Version:/ {print $2; exit}')"
[ -n "$ver" ] || die "apt knows no version of $pkg"
# Keyed by the module list too: a cache made for fewer modules would lack the new ones.
mods="$(echo "$LAB_MODULES" | sha256sum | cut -c1-8)"
dest="$LAB_CACHE/kernel/${pkg}_${ver}_${mods}"
if [ -f "$dest/modules.order" ]; then echo "$dest"; exit 0; fi

command -v depmod >/dev/null || die "depmod not found (install kmod)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -q "$pkg=$ver" >/dev/null 2>&1) || die "apt-get download $pkg=$ver failed"
dpkg -x "$work"/*.deb "$work/root"
kver="$(ls "$work/root/lib/modules")"
depmod -b "$work/root" "$kver"
moddir="$work/root/lib/modules/$kver"

# Resolve each wanted module's dependencies (modules.dep lists them so the last
# must load first) into one ordered, de-duplicated list.
declare -A seen=()
order=()
add() {
  local rel="$1" deps i
  [ -n "${seen[$rel]:-}" ] && return 0
  seen[$rel]=1
  deps="$(awk -v m="$rel:" '$1 == m { $1 = ""; print; exit }' "$moddir/modules.dep")"
  local -a arr=($deps)
  for ((i = ${#arr[@]} - 1; i >= 0; i--)); do add "${arr[$i]}"; done
  order+=("$rel")
}
for m in $LAB_MODULES; do
  rel="$(awk -F: -v m="$m" '{ n = $1; sub(/.*\//, "", n); sub(/\.ko(\.[a-z]+)?$/, "", n); gsub(/-/, "_", n); if (n == m) { print $1; exit } }' "$moddir/modules.dep")"
  [ -n "$rel" ] || die "module $m not in $pkg"
  add "$rel"
done

tmp="$dest.tmp.$$"
mkdir -p "$tmp/modules"
cp "$work/root/boot/vmlinuz-$kver" "$tmp/vmlinuz"
: >"$tmp/modules.order"
for rel in "${order[@]}"; do
  name="$(basename "$rel")"
  cp "$moddir/$rel" "$tmp/modules/$name"
  echo "$name" >>"$tmp/modules.order"
done
echo "$kver" >"$tmp/version"
rm -rf "$dest"
mv "$tmp" "$dest"
echo "$dest"
