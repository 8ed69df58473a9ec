#!/usr/bin/env node
// Makes a fresh clone runnable: checks the system packages the build needs,
// installs npm dependencies (which builds the addon), and compiles the
// TypeScript. Plain JavaScript on purpose: it runs before anything is built.
'use strict';
const { execSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const run = (cmd) => execSync(cmd, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });

const needs = [
  ['/usr/include/xxhash.h', 'libxxhash-dev'],
  ['/usr/include/zstd.h', 'libzstd-dev'],
];
const missing = needs.filter(([file]) => !fs.existsSync(file)).map(([, pkg]) => pkg);
const built = fs.existsSync(path.join(root, 'build', 'Release', 'drbd_bisync.node')) || fs.existsSync(path.join(root, 'prebuilds'));
if (!built && missing.length) {
  process.stderr.write(`drbd-bisync: the native build needs ${missing.join(' ')}: apt-get install -y build-essential python3 ${missing.join(' ')} drbd-utils\n`);
  process.exit(1);
}
// npm ci runs the install script, which builds the addon when no prebuild fits.
if (!fs.existsSync(path.join(root, 'node_modules', 'node-addon-api'))) run('npm ci --no-audit --no-fund');
else if (!built) run('npm run build:native');
run(`"${process.execPath}" "${require.resolve('typescript/bin/tsc', { paths: [root] })}" -p tsconfig.json`);
