#!/usr/bin/env node
// Makes a fresh clone runnable: installs the npm dependencies (which builds the
// addon: xxHash and zstd come from npm packages, no system -dev packages), and
// compiles the TypeScript. Plain JavaScript on purpose: it runs before anything
// is built.
'use strict';
const { execSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const run = (cmd) => execSync(cmd, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });

const built = () => fs.existsSync(path.join(root, 'build', 'Release', 'drbd_bisync.node')) || fs.existsSync(path.join(root, 'prebuilds'));
// --ignore-scripts: the packages that carry xxHash's and zstd's sources would
// otherwise build addons of their own that nothing here loads; ours is built next.
if (!fs.existsSync(path.join(root, 'node_modules', 'node-addon-api'))) run('npm ci --ignore-scripts --no-audit --no-fund');
if (!built()) run('npm run build:native');
run(`"${process.execPath}" "${require.resolve('typescript/bin/tsc', { paths: [root] })}" -p tsconfig.json`);
