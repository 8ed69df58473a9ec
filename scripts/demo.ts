// `npm run demo`: a split brain repaired by a bidirectional merge between two
// processes over TLS on 127.0.0.1. Two image files get DRBD meta-data
// (createMetadata(), as drbdmeta create-md writes it: no drbd-utils needed)
// and disjoint changes on each side, like two
// virtualization hosts whose VMs wrote different logical volumes during an
// outage. Then `serve` runs for the "peer" and `merge` for the "local" node.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BlockDevice } from '../lib/device/block-device';
import { diffDevices } from '../lib/device/compare';
import { totalBytes } from '../lib/device/extent';
import { readMetadataAt } from '../lib/drbd/metadata';
import { startServe } from './serve-process';
import { makePair, randomRanges, splitBrainStates } from './split-brain';

const CLI = path.join(__dirname, '..', 'lib', 'cli', 'main.js');
const SIZE = 256 << 20;
const MiB = (n: number): string => `${(n / 2 ** 20).toFixed(2)} MiB`;

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** The generation UUIDs as `drbdmeta get-gi` orders them, and the bits set. */
async function getGi(device: string): Promise<string> {
  const { md, close } = await readMetadataAt(device);
  try {
    const r = await md.report();
    return `${[r.uuids.current, r.uuids.bitmap, ...r.uuids.history].join(':')}, ${r.bitsSet} bits set`;
  } finally {
    await close();
  }
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'drbd-bisync-demo-'));
  const local = path.join(dir, 'node-a.img');
  const peer = path.join(dir, 'node-b.img');
  for (const f of [local, peer]) {
    fs.writeFileSync(f, "");
    fs.truncateSync(f, SIZE);
  }
  say(`1. Two ${MiB(SIZE)} DRBD backing devices with internal v08 meta-data in ${dir}`);

  // Node A's VMs wrote in the first half (one LV), node B's in the second half (another LV).
  const half = SIZE / 2;
  const aWrites = randomRanges(half - (4 << 20), 40, 64);
  const bWrites = randomRanges(half - (4 << 20), 40, 64).map(([o, l]) => [o + half, l] as const);
  const states = splitBrainStates(aWrites, bWrites);
  const dataSize = await makePair(local, peer, { ...states, commonData: true });
  say(`2. Split brain: both nodes were primary while disconnected.`);
  say(`   node A wrote ${MiB(totalBytes(aWrites))} in ${aWrites.length} ranges, node B wrote ${MiB(totalBytes(bWrites))} in ${bWrites.length} ranges`);
  say(`   node A UUIDs: ${await getGi(local)}`);
  say(`   node B UUIDs: ${await getGi(peer)}`);

  const psk = path.join(dir, 'psk');
  fs.writeFileSync(psk, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  const agent = await startServe(CLI, { device: peer, listen: '127.0.0.1:0', pskFile: psk, once: true });
  say(`3. Node B serves its device on 127.0.0.1:${agent.port} (TLS with a pre-shared key)`);
  say(`4. Node A: drbd-bisync merge --device ${path.basename(local)} --peer 127.0.0.1:${agent.port} --psk-file psk --yes`);
  say('');
  const merge = spawn(process.execPath, [CLI, 'merge', '--device', local, '--peer', `127.0.0.1:${agent.port}`, '--psk-file', psk, '--yes', '--journal', path.join(dir, 'journal.json')], { stdio: 'inherit' });
  const code = await new Promise<number>((resolve) => merge.on('exit', (c) => resolve(c ?? 1)));
  await agent.exited;
  say('');
  if (code !== 0) throw new Error(`merge exited with ${code}`);

  const [a, b] = [await BlockDevice.open(local), await BlockDevice.open(peer)];
  let differing = 0;
  for await (const e of diffDevices(a, b, 4096, { extents: [[0, dataSize]] })) differing += e[1];
  await Promise.all([a.close(), b.close()]);
  say(`5. Data areas compared block by block: ${differing === 0 ? 'identical' : `${differing} bytes DIFFER`}`);
  say(`   node A UUIDs: ${await getGi(local)}`);
  say(`   node B UUIDs: ${await getGi(peer)}`);
  say('   Same current UUID, no bitmap UUID, no bits set: `drbdadm up` connects UpToDate/UpToDate with nothing to resync.');
  fs.rmSync(dir, { recursive: true, force: true });
  if (differing) process.exitCode = 1;
}

main().catch((e: unknown) => {
  process.stderr.write(`demo failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 2;
});
