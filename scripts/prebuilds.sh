#!/bin/sh
# The prebuilt binaries `npm pack` puts in the tarball (N-API, so one per
# platform serves every Node.js >= 20): linux-x64 with this machine's
# compiler, and linux-arm64 too when Debian's cross toolchain is installed
# (apt-get install g++-aarch64-linux-gnu). prebuildify leaves them in
# prebuilds/PLATFORM-ARCH/ and removes its build, so a clone's `npm test`
# then loads the x64 prebuild.
set -eu
cd "$(dirname "$0")/.."
if command -v aarch64-linux-gnu-g++ >/dev/null 2>&1; then
  PREBUILD_STRIP_BIN=aarch64-linux-gnu-strip CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ \
    LINK=aarch64-linux-gnu-g++ AR=aarch64-linux-gnu-ar prebuildify --napi --strip --tag-libc --arch arm64
fi
prebuildify --napi --strip --tag-libc
