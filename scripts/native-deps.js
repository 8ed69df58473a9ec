#!/usr/bin/env node
// For binding.gyp: where the npm packages that ship xxHash's and zstd's C
// sources are (devDependencies: a build from a clone has them; an installed
// package loads its prebuilt binary and needs neither).
'use strict';
const path = require('node:path');

const what = process.argv[2];
try {
  if (what === 'xxhash-include') process.stdout.write(path.join(path.dirname(require.resolve('xxhash-addon/package.json')), 'xxHash'));
  else if (what === 'zstd-gyp') process.stdout.write(path.relative(process.cwd(), require.resolve('zstd-napi/deps/zstd.gyp')));
  else throw new Error(`unknown: ${what}`);
} catch (e) {
  process.stderr.write(`drbd-bisync: no prebuilt binary fits this platform (${process.platform}-${process.arch}), and building one needs the packages that carry xxHash's and zstd's sources: ${e.message}\n` +
    'hint: build from a clone of the repository (npm ci --ignore-scripts && npm run build), or npm install --no-save xxhash-addon@2.1.0 zstd-napi@0.0.13 --ignore-scripts here and run npm rebuild drbd-bisync\n');
  process.exit(1);
}
