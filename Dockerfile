# drbd-bisync: the addon built from source, the CLI as entrypoint.
#   docker build -t drbd-bisync .
#   docker run --rm --privileged -v /dev:/dev drbd-bisync diff /dev/vg/a /dev/vg/b --json
# The peer's agent for a merge (host network, the key file mounted read-only):
#   docker run --rm --privileged --network host -v /dev:/dev -v /etc/drbd-bisync.psk:/psk:ro \
#     drbd-bisync serve --device /dev/vg/r0 --listen 10.0.0.2:7790 --psk-file /psk

# node:20-bookworm already has what the build needs (python3, make, g++): xxHash
# and zstd come from npm packages (package-lock.json), so no -dev packages.
FROM node:20-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json ./
# The install script would compile the addon before its sources are here, and
# the source packages' own install scripts are not wanted at all.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev

# zstd is linked statically: the runtime needs no libzstd. drbd-utils is there
# for `status` (drbdsetup) and for operators who want drbdadm in the container.
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends drbd-utils util-linux \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /run/lock
WORKDIR /opt/drbd-bisync
COPY --from=build /src/package.json /src/binding.gyp ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/lib ./dist/lib
COPY --from=build /src/build/Release/drbd_bisync.node ./build/Release/
ENTRYPOINT ["node", "/opt/drbd-bisync/dist/lib/cli/main.js"]
