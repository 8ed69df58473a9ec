# drbd-bisync: the addon built from source, the CLI as entrypoint.
#   docker build -t drbd-bisync .
#   docker run --rm --privileged -v /dev:/dev drbd-bisync diff /dev/vg/a /dev/vg/b --json
# The peer's agent for a merge (host network, the key file mounted read-only):
#   docker run --rm --privileged --network host -v /dev:/dev -v /etc/drbd-bisync.psk:/psk:ro \
#     drbd-bisync serve --device /dev/vg/r0 --listen 10.0.0.2:7790 --psk-file /psk

FROM node:20-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential python3 libxxhash-dev libzstd-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
# The install script would compile the addon before its sources are here.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends drbd-utils libzstd1 util-linux \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /run/lock
WORKDIR /opt/drbd-bisync
COPY --from=build /src/package.json /src/binding.gyp ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/lib ./dist/lib
COPY --from=build /src/build/Release/drbd_bisync.node ./build/Release/
ENTRYPOINT ["node", "/opt/drbd-bisync/dist/lib/cli/main.js"]
