// The online merge's targets on two real DRBD 8.4 guests (the qemu lab): how
// long the other node O waits (its resource down -> back in the cluster, and
// -> UpToDate/UpToDate) against a plain copy of the same bytes over the same
// guest link, whether the survivor S ever waits, and the bytes over the link
// against the bytes that must move. Both ends are started before O goes down
// (serve --wait-down, merge --wait-peer), as the README tells operators to. BENCH_ONLINE_MIB sets the size of O's
// changes (default 1024); S changes 5 % of that. Needs what the lab needs
// (root, qemu, drbd-utils); under TCG every guest instruction is emulated, so
// the figures are the emulator's, not a real link's.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DRBD_DEVICE, RESOURCE, configure, drbdadm, procDrbd, resetToSynced, splitBrain, waitSynced } from '../drbd-lab/drbd';
import { Guest, Lab, labUnavailable, prepareLab } from '../drbd-lab/lab';
import { type BenchRow, median } from './types';

const CLI = path.join(__dirname, '..', '..', 'lib', 'cli', 'main.js');
const CONF = '/run/lab/r0.conf';
const MiB = 2 ** 20;
const PORT = { serve: 7790, copy: 7799 };
const LONG = 4 * 3600_000; // a guest step may take long under emulation; the bench's own figures say how long

const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const mbps = (bytes: number, ms: number): string => `${(bytes / ms / 1e3).toFixed(1)} MB/s`;
const ratio = (x: number, y: number): string => `${(x / y).toFixed(3)} x`;

/** Size of O's changes in bytes, from BENCH_ONLINE_MIB (whole MiB, at least 16). */
export function onlineChangeBytes(env: string | undefined = process.env.BENCH_ONLINE_MIB): number {
  const v = env ?? '1024';
  if (!/^\d+$/.test(v) || Number(v) < 16) throw new RangeError(`BENCH_ONLINE_MIB must be a whole number of MiB, at least 16, got '${v}'`);
  return Number(v) * MiB;
}

/** Bytes the guest's one NIC transmitted: both guests' sum is every byte on the link between them. */
async function nicBytes(g: Guest): Promise<number> {
  const out = await g.ok('n=$(ls /sys/class/net | grep -v "^lo$" | head -1); cat /sys/class/net/$n/statistics/tx_bytes');
  return Number(out.trim());
}

/**
 * Bytes DRBD sent and received on this node since its minor was created (/proc/drbd ns + nr, KiB): on S,
 * created by resetToSynced's `up`, which moved nothing, so this is the hand-back's resync and replication.
 */
async function drbdNetBytes(g: Guest): Promise<number> {
  const s = await procDrbd(g);
  return ((s.ns ?? 0) + (s.nr ?? 0)) * 1024;
}

/** Runs a timed script in the guest: its own clock around `body`, so the agent's polling does not count. */
async function guestMs(g: Guest, body: string): Promise<number> {
  const out = await g.ok(`t0=$(date +%s%N)\n${body}\nt1=$(date +%s%N)\necho "ms=$(( (t1 - t0) / 1000000 ))"`, LONG);
  const m = /ms=(\d+)/.exec(out);
  if (!m) throw new Error(`on ${g.name}: no timing in the output of \`${body}\`: ${out}`);
  return Number(m[1]);
}

/** A file of random bytes in the guest's share (the guests read it over 9p: /dev/urandom is slow under TCG). */
function randomFile(g: Guest, name: string, bytes: number): string {
  const fd = fs.openSync(g.hostPath(name), 'w');
  try {
    for (let done = 0; done < bytes; done += MiB) fs.writeSync(fd, randomBytes(Math.min(MiB, bytes - done)));
  } finally {
    fs.closeSync(fd);
  }
  return g.guestPath(name);
}

/** Writes `bytes` of random data through /dev/drbd0 at `offset` (both MiB aligned), bypassing the cache. */
async function writeChanges(g: Guest, offset: number, bytes: number): Promise<void> {
  const src = randomFile(g, 'bench-changes.bin', bytes);
  try {
    await g.ok(`dd if=${src} of=${DRBD_DEVICE} bs=1M seek=${offset / MiB} oflag=direct conv=notrunc status=none`, LONG);
  } finally {
    fs.rmSync(g.hostPath('bench-changes.bin'), { force: true });
  }
}

// The plain copy's two ends, in perl (in the guests' root; busybox nc moves 1 KiB per syscall, which under
// emulation is a fraction of what the link carries): 1 MiB reads and writes, the receiver discards.
const SEND = `use IO::Socket::INET; ($dev, $n, $to) = @ARGV; open(D, "<", $dev) or die "$dev: $!";
$s = IO::Socket::INET->new(PeerAddr => $to) or die "connect $to: $!";
while ($n > 0 && ($r = sysread(D, $b, $n < 1 << 20 ? $n : 1 << 20))) { $n -= $r; for ($o = 0; $o < $r; $o += $w) { $w = syswrite($s, $b, $r - $o, $o) or die "send: $!" } }
die "short read of $dev" if $n; close($s) or die "close: $!"`;
const RECEIVE = `use IO::Socket::INET; $l = IO::Socket::INET->new(LocalPort => $ARGV[0], Listen => 1, ReuseAddr => 1) or die "listen: $!";
$c = $l->accept or die "accept: $!"; $n = 0; while (($r = sysread($c, $b, 1 << 20))) { $n += $r } defined $r or die "receive: $!"; print "$n\n"`;
const perl = (script: string, args: Array<string | number>): string => `perl -e '${script}' ${args.join(' ')}`;

/**
 * The least work that moves `bytes` of O's disk to S over the guest link: read O's backing disk (cache
 * dropped) 1 MiB at a time into a TCP socket, S throwing it away. Returns ms on O's clock and the NICs' bytes.
 */
async function plainCopy(o: Guest, s: Guest, bytes: number): Promise<{ ms: number; nicBytes: number }> {
  const before = (await nicBytes(o)) + (await nicBytes(s));
  const sink = s.start(perl(RECEIVE, [PORT.copy]));
  // Listening (state 0A) in /proc/net/tcp or tcp6: the guests have no inet_diag for ss.
  const hexPort = PORT.copy.toString(16).toUpperCase().padStart(4, '0');
  const listening = await s.sh(`until cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -Eq ':${hexPort} 0+:0000 0A'; do sleep 0.1; done`, 60_000);
  if (listening.rc !== 0) throw new Error(`the plain copy's receiver on ${s.name} is not listening on ${PORT.copy}: ${(await s.wait(sink, 1000)).out}`);
  await o.ok('echo 3 > /proc/sys/vm/drop_caches');
  const ms = await guestMs(o, perl(SEND, ['/dev/vda', bytes, `${s.ip}:${PORT.copy}`]));
  const r = await s.wait(sink, LONG);
  if (r.rc !== 0 || Number(r.out.trim()) !== bytes) throw new Error(`the plain copy to ${s.name} received ${r.out.trim()} bytes, not ${bytes} (rc ${r.rc})`);
  return { ms, nicBytes: (await nicBytes(o)) + (await nicBytes(s)) - before };
}

/** S writes one 4 KiB block every second and logs each write's ms (S's VMs keep writing during the merge). */
function probeWrites(s: Guest, offset: number): { samples: () => number[]; stop: () => Promise<void> } {
  const log = s.hostPath('probe.ms');
  const stopFile = s.hostPath('probe-stop');
  for (const f of [log, stopFile]) fs.rmSync(f, { force: true });
  fs.writeFileSync(s.hostPath('probe.bin'), randomBytes(4096));
  const id = s.start(`while [ ! -f /run/lab/probe-stop ]; do t0=$(date +%s%N); dd if=/run/lab/probe.bin of=${DRBD_DEVICE} bs=4096 seek=${offset / 4096} oflag=direct conv=notrunc status=none || exit 1; echo $(( ($(date +%s%N) - t0) / 1000000 )) >> /run/lab/probe.ms; sleep 1; done`);
  return {
    samples: () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n').filter(Boolean).map(Number) : []),
    async stop() {
      fs.writeFileSync(stopFile, '');
      const r = await s.wait(id, 120_000);
      if (r.rc !== 0) throw new Error(`S's probe writer failed: ${r.out}`);
    },
  };
}

interface OnlineDoc {
  outcome: string;
  movedToLocalBytes: number;
  wire: { wireBytesSent: number; wireBytesReceived: number; dataStreams?: { count: number; cpu: Record<string, number> } };
  phaseMs: Record<string, number>;
  handback: {
    peerWaitMs: number;
    peerConnectedWaitMs: number;
    handbackMs: number;
    survivorStayedPrimary: boolean;
    rolesSeen: string[];
    drbdResync: { eliminatedBytes: number; transferredBytes: number; totalBytes: number } | null;
    final: { connection: string; disk: string; peerDisk: string; outOfSyncBytes: number };
  };
}

/**
 * Starts `drbd-bisync merge --online --wait-peer` on S against `serve` on O and resolves once it is
 * loaded and trying to connect (as an operator starts it before taking O down); `done` gives its
 * JSON document.
 */
async function startOnlineMerge(s: Guest, o: Guest): Promise<{ done: () => Promise<OnlineDoc> }> {
  const args = ['merge', '--online', '--no-lvm', '--resource', RESOURCE, '--drbd-config', CONF, '--peer', `${o.ip}:${PORT.serve}`,
    '--psk-file', '/run/lab/psk', '--journal', '/run/lab/journal-bench.json', '--wait-peer', '3600', '--yes', '--json'];
  const [out, err] = [s.hostPath('bench-merge.json'), s.hostPath('bench-merge.err')];
  for (const f of [out, err]) fs.rmSync(f, { force: true });
  const id = s.start(`node ${CLI} ${args.join(' ')} >/run/lab/bench-merge.json 2>/run/lab/bench-merge.err`);
  const read = (f: string): string => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '');
  for (const t0 = Date.now(); !/waiting for the agent/.test(read(err)); await new Promise((r) => setTimeout(r, 200))) {
    if (Date.now() - t0 > LONG) throw new Error(`merge --online on ${s.name} never waited for the agent: ${read(err)}`);
    if (fs.existsSync(s.hostPath(`out/${id}.rc`))) throw new Error(`merge --online on ${s.name} ended before connecting: ${read(out)} ${read(err)}`);
  }
  return {
    async done() {
      const r = await s.wait(id, LONG);
      if (r.rc !== 0) throw new Error(`merge --online exited ${r.rc}: ${read(out).trim()} ${read(err).trim()}`);
      const doc = JSON.parse(read(out)) as OnlineDoc;
      if (doc.outcome !== 'merged') throw new Error(`merge --online said ${doc.outcome}`);
      return doc;
    },
  };
}

/**
 * What one guest's emulated CPU charges for AES-256-GCM (OpenSSL, 1 MiB records: the cipher our
 * records use): the least time sealing (on O) or opening (on S) `bytes` takes in the lab.
 */
async function guestAesMBps(g: Guest): Promise<number> {
  const out = await g.ok('openssl speed -elapsed -seconds 5 -bytes 1048576 -evp aes-256-gcm 2>/dev/null | tail -1', LONG);
  const m = /aes-256-gcm\s+([\d.]+)k/i.exec(out);
  if (!m) throw new Error(`on ${g.name}: no AES-256-GCM figure in openssl speed's output: ${out}`);
  return (Number(m[1]) * 1000) / 1e6;
}

async function measure(lab: Lab, oBytes: number, sBytes: number): Promise<BenchRow[]> {
  const [s, o] = [lab.a, lab.b]; // nodea survives (Primary throughout), nodeb is the other node
  await configure(lab, '4000M'); // the resync rate must not be the limit (c-plan-ahead 0: a fixed rate)
  const aes = await guestAesMBps(lab.b);
  await resetToSynced(lab, (from, to) => fs.copyFileSync(from, to));
  const copy = await plainCopy(o, s, oBytes);

  await splitBrain(lab);
  await writeChanges(o, 0, oBytes);
  await writeChanges(s, oBytes, sBytes);
  const probe = probeWrites(s, oBytes);
  await new Promise((r) => setTimeout(r, 5000)); // a few samples of S's writes before anything happens
  const quiet = probe.samples();

  for (const g of lab.nodes) fs.writeFileSync(g.hostPath('psk'), randomBytes(32).toString('hex'), { mode: 0o600 });
  fs.copyFileSync(o.hostPath('psk'), s.hostPath('psk'));
  const nicBefore = (await nicBytes(s)) + (await nicBytes(o));
  // Both ends start first, as an operator would: O's agent (`serve --wait-down`) waits for O's device, S's
  // merge (`--wait-peer`) for the agent. O's wait runs on the host's clock from the moment O's `down` is
  // handed to its agent to the merge's exit (it includes the agent's polling: against us, never for us).
  const serve = o.start(`exec node ${CLI} serve --resource ${RESOURCE} --drbd-config ${CONF} --listen ${o.ip}:${PORT.serve} --psk-file /run/lab/psk --wait-down 3600`);
  await o.waitOutput(serve, /waiting up to/, LONG);
  const merge = await startOnlineMerge(s, o);
  const t0 = Date.now();
  await o.ok(drbdadm(`down ${RESOURCE}`), LONG);
  await o.waitOutput(serve, /serving /, LONG);
  const serving = Date.now() - t0; // O's down, and serve opening the device and listening
  const doc = await merge.done();
  const upToDateMs = Date.now() - t0;
  const h = doc.handback;
  const connectedMs = upToDateMs - (h.peerWaitMs - h.peerConnectedWaitMs);
  const served = await o.wait(serve, 300_000);
  if (served.rc !== 0) throw new Error(`serve on ${o.name} exited ${served.rc}: ${served.out}`);
  await probe.stop();
  const during = probe.samples().slice(quiet.length);
  await waitSynced(lab);
  const nic = (await nicBytes(s)) + (await nicBytes(o)) - nicBefore;
  const drbdBytes = await drbdNetBytes(s); // what S sent and received: both directions, each byte once
  const mergeWire = doc.wire.wireBytesSent + doc.wire.wireBytesReceived;
  const must = oBytes + sBytes;
  const copyMs = doc.phaseMs.toLocal ?? 0;
  const phases = Object.values(doc.phaseMs).reduce((x, y) => x + y, 0); // online, one way: the phases follow each other
  const toConnected = h.peerConnectedWaitMs - (h.peerWaitMs - h.handbackMs);

  const size = `${oBytes / MiB} MiB of O's changes, ${sBytes / MiB} MiB of S's`;
  const limit = `plain TCP copy of ${oBytes / MiB} MiB O -> S (perl, 1 MiB reads): ${secs(copy.ms)} (${mbps(oBytes, copy.ms)})`;
  const resync = h.drbdResync ? `DRBD's resync transferred ${(h.drbdResync.transferredBytes / MiB).toFixed(1)} MiB, eliminated ${(h.drbdResync.eliminatedBytes / MiB).toFixed(1)} MiB by checksum` : 'no DRBD checksum summary';
  const linkRatio = (mergeWire + drbdBytes) / must;
  const nicRatio = nic / must;
  const cpu = doc.wire.dataStreams?.cpu;
  const sCpu = cpu ? Object.entries(cpu).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(', ') : 'n/a';
  const aesMs = (oBytes / (aes * 1e6)) * 1000;
  return [
    { area: 'online', measure: `AES-256-GCM on one guest's emulated CPU (openssl speed, 1 MiB records): sealing ${oBytes / MiB} MiB on O, opening it on S`, ours: `${aes.toFixed(1)} MB/s: ${secs(aesMs)} each side, ${ratio(aesMs, copy.ms)} copy`, limit, target: '-', met: null },
    { area: 'online', measure: 'S\'s data-stream threads during the copy (thread CPU by part; verify: reading each batch back)', ours: sCpu, limit: '-', target: '-', met: null },
    { area: 'online', measure: `O's wait, down -> back in the cluster (S sees it connected), ${size} (qemu TCG)`, ours: `${secs(connectedMs)} (${ratio(connectedMs, copy.ms)} copy)`, limit, target: '<= 1.2 x copy', met: connectedMs <= 1.2 * copy.ms },
    { area: 'online', measure: `O's wait, down -> UpToDate/UpToDate oos:0, ${size} (qemu TCG)`, ours: `${secs(upToDateMs)} (${ratio(upToDateMs, copy.ms)} copy; ${resync})`, limit, target: '<= 1.2 x copy', met: upToDateMs <= 1.2 * copy.ms },
    { area: 'online', measure: 'where O\'s wait went: O down and serving; merge phases; DRBD from the hand-back request; the rest (node start-up, TLS, plan, exit)',
      ours: `serving after ${secs(serving)}; ${Object.entries(doc.phaseMs).map(([p, ms]) => `${p} ${secs(ms)}`).join(', ')}; to connected ${secs(toConnected)}, to UpToDate ${secs(h.handbackMs)}; rest ${secs(upToDateMs - serving - phases - h.handbackMs)}`, limit: '-', target: '-', met: null },
    { area: 'online', measure: `our copy phase alone (toLocal), ${oBytes / MiB} MiB O -> S (qemu TCG)`, ours: `${secs(copyMs)} (${mbps(doc.movedToLocalBytes, copyMs)}, ${ratio(copyMs, copy.ms)} copy)`, limit, target: '-', met: null },
    { area: 'online', measure: 'S\'s wait (Primary throughout; its 4 KiB direct writes, one a second, during the merge)', ours: `${h.survivorStayedPrimary ? '0 s: never left Primary' : `LEFT Primary (${h.rolesSeen.join(', ')})`}; write ms max ${Math.max(...during)}, median ${median(during)} (before: max ${Math.max(...quiet)}), ${during.length} writes`, limit: '0', target: '0', met: h.survivorStayedPrimary },
    { area: 'online', measure: 'bytes over the link / (O\'s + S\'s changes), as merge and DRBD count them (merge wire + S\'s /proc/drbd ns+nr)', ours: `${linkRatio.toFixed(3)} (${((mergeWire + drbdBytes) / MiB).toFixed(1)} MiB: merge ${(mergeWire / MiB).toFixed(1)}, DRBD ${(drbdBytes / MiB).toFixed(1)}, for ${(must / MiB).toFixed(0)} MiB)`, limit: '1.000', target: '<= 1.05', met: linkRatio <= 1.05 },
    { area: 'online', measure: 'bytes over the link / (O\'s + S\'s changes), on both guests\' NICs (Ethernet, IP, TCP, TLS, DRBD checksums)', ours: `${nicRatio.toFixed(3)} (${(nic / MiB).toFixed(1)} MiB)`, limit: `plain copy on the NICs: ${(copy.nicBytes / oBytes).toFixed(3)}`, target: '<= 1.05', met: nicRatio <= 1.05 },
  ];
}

export async function run(): Promise<BenchRow[]> {
  const why = labUnavailable();
  if (why) return [{ area: 'online', measure: 'online merge on the DRBD lab', ours: `skipped: ${why}`, limit: '-', target: '-', met: null }];
  const oBytes = onlineChangeBytes();
  const sBytes = Math.ceil(oBytes / 20 / MiB) * MiB;
  const diskSize = oBytes + sBytes + 16 * MiB; // room for the internal meta-data at the end
  prepareLab();
  const lab = await Lab.create({ diskSize });
  // Both disks plus the largest random file at once (the lab keeps them in /dev/shm when it has the room).
  const st = fs.statfsSync(lab.dir);
  if (st.bavail * st.bsize < 2 * diskSize + oBytes) {
    await lab.close();
    throw new RangeError(`BENCH_ONLINE_MIB=${oBytes / MiB} needs ${((2 * diskSize + oBytes) / MiB).toFixed(0)} MiB free in ${lab.dir}'s file system, it has ${((st.bavail * st.bsize) / MiB).toFixed(0)} MiB`);
  }
  try {
    process.stderr.write(`bench online: booting the lab (${lab.dir}), ${oBytes / MiB} MiB of O's changes\n`);
    await lab.boot();
    return await measure(lab, oBytes, sBytes);
  } finally {
    await lab.close();
  }
}
