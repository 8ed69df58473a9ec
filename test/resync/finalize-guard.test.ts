// The finalize guard: a second writer changes a UUID in a node's superblock
// after the plan and before finalize (drbdmeta, or DRBD brought up meanwhile).
// The merge must see it on the device itself, refuse, and write no meta-data
// on either node. Run on image files and on loop devices, with the peer served
// in-process and through the TLS agent.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import type { Endpoint } from '../../lib/transport/endpoint';
import { LocalEndpoint } from '../../lib/resync/local-endpoint';
import { Merge } from '../../lib/resync/merge';
import { ResyncAgent, connectPeer } from '../../lib/transport';
import { randomRanges, splitBrainStates } from '../../scripts/split-brain';
import { requires } from '../helpers/env';
import { Pair, readRange, setupPair } from '../helpers/pair';

const SIZE = 24 << 20;
const PSK = randomBytes(32);
/** v08 superblock: current UUID at 0x08, bitmap UUID at 0x10 (big-endian). */
const FIELD = { current: 0x08, bitmap: 0x10 } as const;

/** Overwrites one UUID of a superblock from another process, as drbdmeta set-gi would, and syncs it. */
function secondWriter(device: string, at: number): string {
  const value = (randomBytes(8).readBigUInt64BE() & ~1n).toString();
  const script = `const fs = require('fs'); const fd = fs.openSync(${JSON.stringify(device)}, 'r+');
    const b = Buffer.alloc(8); b.writeBigUInt64BE(${value}n); fs.writeSync(fd, b, 0, 8, ${at}); fs.fsyncSync(fd); fs.closeSync(fd);`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return BigInt(value).toString(16).toUpperCase().padStart(16, '0');
}

interface Case {
  loop: boolean;
  agent: boolean;
  side: 'local' | 'peer';
  field: keyof typeof FIELD;
}

const CASES: Case[] = [
  { loop: false, agent: false, side: 'peer', field: 'current' },
  { loop: false, agent: true, side: 'peer', field: 'bitmap' },
  { loop: false, agent: false, side: 'local', field: 'bitmap' },
  { loop: true, agent: false, side: 'local', field: 'current' },
  { loop: true, agent: true, side: 'peer', field: 'current' },
  { loop: true, agent: true, side: 'local', field: 'bitmap' },
];

describe('finalize guard: a UUID changed on the device between plan and finalize', function () {
  let p: Pair | undefined;
  afterEach(() => {
    p?.cleanup();
    p = undefined;
  });

  for (const c of CASES) {
    const where = `${c.loop ? 'loop devices' : 'image files'}, peer ${c.agent ? 'through the agent' : 'in-process'}`;
    it(`${where}: the ${c.side} ${c.field} UUID changed by another process → refused, no meta-data written`, async function () {
      if (!requires(this, 'drbdmeta', ...(c.loop ? (['root', 'losetup'] as const) : []))) return;
      const a = randomRanges(SIZE / 2, 20, 16);
      p = await setupPair(SIZE, splitBrainStates(a, randomRanges(SIZE - (1 << 20), 20, 16, a)), { loop: c.loop });
      const local = await LocalEndpoint.open(p.local, { write: true });
      const peerLocal = await LocalEndpoint.open(p.peer, { write: true });
      let agent: ResyncAgent | undefined;
      let peer: Endpoint = peerLocal;
      if (c.agent) {
        agent = new ResyncAgent({ endpoint: peerLocal, psk: PSK, listen: { host: '127.0.0.1', port: 0 } });
        const { port } = await agent.listen();
        peer = await connectPeer({ host: '127.0.0.1', port, psk: PSK });
      }
      const md = (await (c.side === 'local' ? local : peerLocal).info()).metadata!;
      const target = c.side === 'local' ? p.local : p.peer;
      const mdStart = Math.min(md.alOffset, md.bmOffset, md.mdOffset);
      const snapshot: Record<string, Buffer> = {};
      let written = '';
      const m = new Merge(local, peer, { journal: path.join(p.dir, 'journal.json') });
      // The first verify progress comes after the transfer and before finalize.
      m.on('progress', ({ phase }) => {
        if (phase !== 'verify' || written) return;
        written = secondWriter(target, md.mdOffset + FIELD[c.field]);
        snapshot.local = readRange(p!.local, mdStart, SIZE);
        snapshot.peer = readRange(p!.peer, mdStart, SIZE);
      });
      try {
        await assert.rejects(m.run(), (e: Error & { code?: string }) => {
          assert.equal(e.code, 'ERR_REFUSED', e.message);
          assert.match(e.message, new RegExp(`${c.side} meta-data of .* changed during the merge \\(${c.field} UUID [0-9A-F]{16}, now ${written}\\)`));
          return true;
        });
      } finally {
        if (c.agent) await peer.close();
        await agent?.close();
        await Promise.all([local.close(), peerLocal.close()]);
      }
      assert.ok(written, 'the second writer ran before finalize');
      assert.ok(readRange(p.local, mdStart, SIZE).equals(snapshot.local), 'local meta-data untouched by the merge');
      assert.ok(readRange(p.peer, mdStart, SIZE).equals(snapshot.peer), 'peer meta-data untouched by the merge');
    });
  }
});
