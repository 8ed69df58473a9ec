// Status reads: the generic netlink round trip through the addon, and decoding
// a large GET_STATUS dump (the lab's real 8.4 reply, repeated per minor).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeDrbdMessage, resourcesFromGetStatus } from '../../lib/status/drbd-genl';
import { GENL_ID_CTRL, GenlMessage, encodeString, withGenlSocket } from '../../lib/status/genl';
import { parseProcDrbd } from '../../lib/status/proc-drbd';
import { type BenchRow, median } from './types';

function packageRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error('no package.json above the bench');
  }
}


export async function run(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  // 1. One request/reply (CTRL_CMD_GETFAMILY "nlctrl") on an open socket.
  const times: number[] = [];
  await withGenlSocket(async (s) => {
    const req = encodeString(2, 'nlctrl');
    for (let i = 0; i < 2000; i++) {
      const t0 = process.hrtime.bigint();
      await s.request(GENL_ID_CTRL, 3, 1, req);
      times.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
  });
  const rtt = median(times.slice(200));
  rows.push({ area: 'status', measure: 'generic netlink request round trip (median)', ours: `${rtt.toFixed(1)} µs`, limit: 'a few µs (two syscalls)', target: '< 200 µs', met: rtt < 200 });

  // 2. Decode a GET_STATUS dump of 1000 minors (10 resources x 100 volumes).
  const root = packageRoot();
  const rec = JSON.parse(fs.readFileSync(path.join(root, 'test/fixtures/status/lab/sync-nodea.json'), 'utf8'));
  const one = Buffer.from(rec.netlink.messages.GET_STATUS[0].payload, 'hex');
  const msgs: GenlMessage[] = [];
  for (let i = 0; i < 1000; i++) {
    const p = Buffer.from(one);
    p.writeUInt32LE(i, 0); // minor
    msgs.push({ type: 0, flags: 0, seq: 0, cmd: 2, version: 1, payload: p });
  }
  const n = 20;
  for (let k = 0; k < 5; k++) resourcesFromGetStatus(msgs.map(decodeDrbdMessage)); // warm up the JIT
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < n; k++) resourcesFromGetStatus(msgs.map(decodeDrbdMessage));
  const perMinor = Number(process.hrtime.bigint() - t0) / 1000 / n / 1000;
  rows.push({ area: 'status', measure: 'decode GET_STATUS reply, per minor (1000 minors)', ours: `${perMinor.toFixed(1)} µs`, limit: '-', target: '< 20 µs', met: perMinor < 20 });

  // 3. /proc/drbd with 1000 devices in resync.
  const block = fs.readFileSync(path.join(root, 'test/fixtures/status/proc-drbd/syncsource-primary.txt'), 'utf8').split('\n').slice(2).join('\n');
  const big = `version: 8.4.11 (api:1/proto:86-101)\n${Array.from({ length: 1000 }, (_, i) => block.replace(/^ 0:/m, ` ${i}:`)).join('')}`;
  const t1 = process.hrtime.bigint();
  for (let k = 0; k < n; k++) if (parseProcDrbd(big).devices.length !== 1000) throw new Error('proc parse lost devices');
  const perDev = Number(process.hrtime.bigint() - t1) / 1000 / n / 1000;
  rows.push({ area: 'status', measure: 'parse /proc/drbd, per device (1000 devices)', ours: `${perDev.toFixed(1)} µs`, limit: '-', target: '< 20 µs', met: perDev < 20 });
  return rows;
}
