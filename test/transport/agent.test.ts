// The wire protocol end to end over loopback: an agent serving an in-memory
// Endpoint, a RemoteEndpoint calling it.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { BisyncError } from '../../lib/device/errors';
import { type Extent, normalize } from '../../lib/device/extent';
import { ResyncAgent, RemoteEndpoint, SessionEnd, connectPeer } from '../../lib/transport';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { FramedConnection, testHooks } from '../../lib/transport/connection';
import { PSK_CIPHERS } from '../../lib/transport/psk';
import { Frame, FrameType, PROTOCOL_VERSION } from '../../lib/transport/wire';
import { MemoryEndpoint } from './fixtures/memory-endpoint';
import { startRelay } from './fixtures/proxy';

const PSK = randomBytes(32);
const MiB = 1 << 20;

async function startAgent(ep: MemoryEndpoint, extra: Partial<ConstructorParameters<typeof ResyncAgent>[0]> = {}): Promise<{ agent: ResyncAgent; port: number; errors: Error[]; ends: SessionEnd[] }> {
  const agent = new ResyncAgent({ endpoint: ep, psk: PSK, listen: { host: '127.0.0.1', port: 0 }, ...extra });
  const errors: Error[] = [];
  const ends: SessionEnd[] = [];
  agent.on('error', (e: Error) => errors.push(e));
  agent.on('session-end', (e: SessionEnd) => ends.push(e));
  const { port } = await agent.listen();
  return { agent, port, errors, ends };
}

function randomExtents(count: number, size: number, block = 4096, maxBlocks = 16): Extent[] {
  const out: Extent[] = [];
  for (let i = 0; i < count; i++) {
    const len = (1 + Math.floor(Math.random() * maxBlocks)) * block;
    const off = Math.floor(Math.random() * ((size - len) / block)) * block;
    out.push([off, len]);
  }
  return normalize(out); // apart: the agent refuses writes whose extents overlap
}

/** A port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

function slice(disk: Buffer, extents: Extent[]): Buffer {
  return Buffer.concat(extents.map(([o, l]) => disk.subarray(o, o + l)));
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A bare authenticated connection, to speak the protocol wrongly on purpose. */
async function rawSession(port: number): Promise<{ conn: FramedConnection; frames: Frame[]; closed: Promise<Error | null> }> {
  const sock = tls.connect({ host: '127.0.0.1', port, ciphers: PSK_CIPHERS, maxVersion: 'TLSv1.2', pskCallback: () => ({ psk: PSK, identity: 'drbd-bisync' }), checkServerIdentity: () => undefined });
  await new Promise((r) => sock.once('secureConnect', r));
  const frames: Frame[] = [];
  let onClose!: (e: Error | null) => void;
  const closed = new Promise<Error | null>((r) => (onClose = r));
  const conn = new FramedConnection(sock, sock, 'test agent', { onFrame: (f) => frames.push(f), onCorruptFrame: () => undefined, onClose: (e) => onClose(e) });
  return { conn, frames, closed };
}

describe('transport: agent and RemoteEndpoint over TLS-PSK', function () {
  let agent: ResyncAgent | null = null;
  let remote: RemoteEndpoint | null = null;
  afterEach(async () => {
    testHooks.corruptOutgoing = null;
    await remote?.close().catch(() => undefined);
    await agent?.close();
    agent = null;
    remote = null;
  });

  it('serves every Endpoint method with the same results as the endpoint itself', async () => {
    const ep = new MemoryEndpoint(4 * MiB, (d) => randomBytes(MiB).copy(d, MiB));
    ep.changes = [[0, 4096], [MiB, 8192]];
    const s = await startAgent(ep);
    agent = s.agent;
    remote = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK });
    assert.equal(remote.hostname.length > 0, true);
    assert.deepEqual(await remote.info(), await ep.info());
    assert.deepEqual(await remote.changeSet(), ep.changes);
    const x: Extent[] = [[MiB, 64 * 1024], [3 * MiB, 8192]];
    assert.deepEqual(await remote.hash(x, 4096), await ep.hash(x, 4096));
    assert.ok((await remote.read(x)).equals(slice(ep.disk, x)));
    const data = randomBytes(12288);
    await remote.write([[8192, 4096], [2 * MiB, 8192]], data);
    assert.ok(ep.disk.subarray(8192, 12288).equals(data.subarray(0, 4096)));
    assert.ok(ep.disk.subarray(2 * MiB, 2 * MiB + 8192).equals(data.subarray(4096)));
    await remote.flush();
    const md = await remote.writeMetadata({ uuids: { current: 'ABCDEF0123456789' }, clearBitmap: true });
    assert.equal(md.uuids.current, 'ABCDEF0123456789');
    assert.deepEqual(ep.updates, [{ uuids: { current: 'ABCDEF0123456789' }, clearBitmap: true }]);
    assert.equal(await remote.lvm(), null);
    const vg = { name: 'vg0', uuid: 'U', seqno: 7, extentSize: MiB, tags: ['RHAT_storage_domain'], pvName: 'pv0', peCount: 3, lvs: [], ovirt: true };
    ep.lvmView = { pv: { uuid: 'P', labelSector: 1, deviceSize: 4 * MiB, peStart: MiB, mdas: [] }, metadataRegion: [[0, MiB]], committed: { seqno: 7, checksum: 9, mda: 0, offset: 512, size: 100, description: null, creationHost: null, creationTime: null }, history: [], vg, unallocated: [[MiB, 3 * MiB]] };
    ep.lvmVersions.set('6:5', { ...vg, seqno: 6 });
    assert.deepEqual(await remote.lvm(), ep.lvmView);
    assert.deepEqual(await remote.lvm({ history: false }), ep.lvmView);
    assert.deepEqual(await remote.lvmVersion(6, 5), { ...vg, seqno: 6 });
    await assert.rejects(remote.lvmVersion(1, 2), (e: Error & { code?: string }) => e.code === 'ERR_BAD_LVM' && /seqno 1 checksum 2/.test(e.message));
  });

  it('keeps many requests in flight on one connection and matches each reply to its call', async () => {
    const size = 16 * MiB;
    const ep = new MemoryEndpoint(size, (d) => randomBytes(size).copy(d));
    ep.delayMs = 5;
    const s = await startAgent(ep);
    agent = s.agent;
    remote = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK });
    const reads = Array.from({ length: 200 }, () => randomExtents(1 + Math.floor(Math.random() * 4), size));
    const results = await Promise.all(reads.map((x) => remote!.read(x)));
    results.forEach((r, i) => assert.ok(r.equals(slice(ep.disk, reads[i])), `read ${i} came back with another call's data`));
    assert.ok(ep.maxRunning >= 10, `only ${ep.maxRunning} calls ran at once: requests were not pipelined`);
    assert.equal(remote.outstanding, 0);
  });

  it('moves large payloads intact (64 MiB write, then read back)', async () => {
    const ep = new MemoryEndpoint(80 * MiB);
    const s = await startAgent(ep);
    agent = s.agent;
    remote = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK });
    const data = randomBytes(64 * MiB);
    await remote.write([[4 * MiB, 64 * MiB]], data);
    assert.ok(ep.disk.subarray(4 * MiB, 68 * MiB).equals(data));
    assert.ok((await remote.read([[4 * MiB, 64 * MiB]])).equals(data));
  });

  it('puts at most 1.01 x the payload on the wire for 8 MiB batches', async () => {
    const ep = new MemoryEndpoint(128 * MiB);
    const s = await startAgent(ep);
    agent = s.agent;
    remote = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK });
    const before = remote.stats();
    for (let i = 0; i < 8; i++) {
      const x = randomExtents(64, 128 * MiB, 4096, 64);
      let n = 0;
      const batch: Extent[] = [];
      for (const e of x) if (n + e[1] <= 8 * MiB) (batch.push(e), (n += e[1]));
      await remote.write(batch, randomBytes(n));
    }
    const after = remote.stats();
    const payload = after.payloadBytesSent - before.payloadBytesSent;
    const wire = after.wireBytesSent - before.wireBytesSent;
    assert.ok(payload > 32 * MiB, `payload ${payload}`);
    assert.ok(wire <= 1.01 * payload, `wire ${wire} > 1.01 x payload ${payload}`);
    assert.ok(wire >= payload, 'the wire count cannot be below the payload without compression');
  });

  it('refuses a client with the wrong key, tells both sides why, and keeps serving', async () => {
    const ep = new MemoryEndpoint(MiB);
    const s = await startAgent(ep);
    agent = s.agent;
    await assert.rejects(connectPeer({ host: '127.0.0.1', port: s.port, psk: randomBytes(32) }), (e: BisyncError) => {
      assert.equal(e.code, 'ERR_REFUSED');
      assert.match(e.message, /authentication failed.*pre-shared key mismatch/);
      return true;
    });
    await until(() => s.errors.length > 0);
    assert.match(s.errors[0].message, /authentication failed.*pre-shared key mismatch/);
    await assert.rejects(connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK, identity: 'someone-else' }), /authentication failed/);
    remote = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK });
    assert.equal((await remote.info()).size, MiB);
  });

  it('turns a second client away as busy while a session runs, and serves it once that ends', async () => {
    const ep = new MemoryEndpoint(MiB);
    const s = await startAgent(ep);
    agent = s.agent;
    remote = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK });
    await assert.rejects(connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK }), (e: BisyncError) => e.code === 'ERR_REFUSED' && /busy/.test(e.message));
    await remote.close();
    await until(() => !s.agent.sessionActive);
    assert.equal(ep.closed, false, 'the agent closed the endpoint when the session ended');
    remote = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK });
    assert.equal((await remote.info()).size, MiB);
  });

  it('stops after the first session with once: true', async () => {
    const ep = new MemoryEndpoint(MiB);
    const s = await startAgent(ep, { once: true });
    agent = s.agent;
    const closed = new Promise<void>((r) => s.agent.once('close', () => r()));
    remote = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK });
    await remote.info();
    await remote.close();
    await closed;
    await until(() => s.ends.length === 1);
    assert.equal(s.ends[0].error, null);
    assert.equal(s.ends[0].reason, null);
    assert.ok(s.ends[0].requests >= 1);
    await new Promise((r) => setTimeout(r, 50));
    await assert.rejects(connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK, connectTimeoutMs: 2000 }), (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED');
    assert.equal(ep.closed, false);
  });

  it('carries SystemError fields of a failed call across the wire', async () => {
    const ep = new MemoryEndpoint(MiB);
    const s = await startAgent(ep);
    agent = s.agent;
    remote = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK });
    await assert.rejects(remote.read([[MiB - 4096, 8192]]), (e: NodeJS.ErrnoException) => {
      assert.equal(e.code, 'EIO');
      assert.equal(e.errno, -5);
      assert.equal(e.syscall, 'pread');
      assert.equal(e.path, '/dev/memory');
      assert.match(e.message, /peer 127\.0\.0\.1:\d+ \(read\): EIO/);
      return true;
    });
    assert.equal((await remote.info()).size, MiB, 'the session survives a failed call');
  });

  it('rejects a corrupted write with ERR_CHECKSUM and writes nothing', async () => {
    const ep = new MemoryEndpoint(MiB);
    const s = await startAgent(ep);
    agent = s.agent;
    remote = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK });
    let armed = true;
    testHooks.corruptOutgoing = (type, json) => type === FrameType.REQUEST && (json as { m: string }).m === 'write' && armed && !(armed = false);
    await assert.rejects(remote.write([[0, 65536]], Buffer.alloc(65536, 0xee)), (e: BisyncError) => e.code === 'ERR_CHECKSUM');
    assert.ok(ep.disk.subarray(0, 65536).every((b) => b === 0), 'a corrupted write reached the disk');
    await remote.write([[0, 65536]], Buffer.alloc(65536, 0xee));
    assert.ok(ep.disk.subarray(0, 65536).every((b) => b === 0xee));
  });

  it('rejects a corrupted read reply with ERR_CHECKSUM (compressed or not)', async () => {
    for (const compression of ['none', 'zstd'] as const) {
      const ep = new MemoryEndpoint(MiB, (d) => d.fill(7, 0, 65536));
      const s = await startAgent(ep);
      remote = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK, compression });
      testHooks.corruptOutgoing = (type) => type === FrameType.REPLY;
      await assert.rejects(remote.read([[0, 65536]]), (e: BisyncError) => e.code === 'ERR_CHECKSUM');
      testHooks.corruptOutgoing = null;
      assert.ok((await remote.read([[0, 65536]])).every((b) => b === 7));
      await remote.close();
      await s.agent.close();
    }
    remote = null;
  });

  it('gives the same data with compression on and off, and zstd shrinks compressible data', async () => {
    const size = 32 * MiB;
    const noise = randomBytes(8 * MiB);
    const fill = (d: Buffer): void => {
      noise.copy(d, 0); // incompressible
      for (let o = 8 * MiB; o < size; o += 4096) d.write(`block ${o} `.repeat(100), o); // compressible
    };
    const got: Record<string, { data: Buffer; wire: number; payload: number; wrote: Buffer }> = {};
    for (const compression of ['none', 'zstd'] as const) {
      const ep = new MemoryEndpoint(size, fill);
      const s = await startAgent(ep);
      const r = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK, compression });
      assert.equal(r.compression, compression);
      const x: Extent[] = [[0, 4 * MiB], [8 * MiB, 16 * MiB], [30 * MiB, 2 * MiB]];
      const data = await r.read(x);
      await r.write([[24 * MiB, 4 * MiB]], data.subarray(4 * MiB, 8 * MiB));
      got[compression] = { data, wire: r.stats().wireBytesReceived, payload: r.stats().payloadBytesReceived, wrote: Buffer.from(ep.disk.subarray(24 * MiB, 28 * MiB)) };
      await r.close();
      await s.agent.close();
    }
    assert.ok(got.none.data.equals(got.zstd.data));
    assert.ok(got.none.wrote.equals(got.zstd.wrote));
    assert.equal(got.none.payload, got.zstd.payload);
    assert.ok(got.zstd.wire < got.none.wire * 0.6, `zstd wire ${got.zstd.wire} vs plain ${got.none.wire}`);
  });

  it('sends incompressible data raw under zstd (no growth)', async () => {
    const ep = new MemoryEndpoint(16 * MiB, (d) => randomBytes(16 * MiB).copy(d));
    const s = await startAgent(ep);
    agent = s.agent;
    remote = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK, compression: 'zstd' });
    const before = remote.stats();
    await remote.read([[0, 8 * MiB]]);
    await remote.write([[8 * MiB, 8 * MiB]], randomBytes(8 * MiB));
    const after = remote.stats();
    assert.ok(after.wireBytesReceived - before.wireBytesReceived <= 1.01 * 8 * MiB);
    assert.ok(after.wireBytesSent - before.wireBytesSent <= 1.01 * 8 * MiB);
  });

  it('honours the rate limit in both directions (order of magnitude)', async () => {
    const ep = new MemoryEndpoint(16 * MiB);
    const s = await startAgent(ep);
    agent = s.agent;
    const rate = 4 * MiB;
    remote = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK, rateLimit: rate });
    let t = performance.now();
    for (let i = 0; i < 8; i++) await remote.write([[i * MiB, MiB]], randomBytes(MiB));
    const up = (performance.now() - t) / 1000;
    t = performance.now();
    for (let i = 0; i < 8; i++) await remote.read([[i * MiB, MiB]]);
    const down = (performance.now() - t) / 1000;
    // 8 MiB at 4 MiB/s is 2 s; unlimited loopback takes well under 0.2 s.
    assert.ok(up >= 1, `8 MiB sent in ${up.toFixed(2)} s despite a 4 MiB/s limit`);
    assert.ok(down >= 1, `8 MiB received in ${down.toFixed(2)} s: the agent ignored the limit`);
  });

  it('fails every outstanding call when the connection is cut, without hanging', async () => {
    const ep = new MemoryEndpoint(4 * MiB);
    let release!: () => void;
    ep.gate = new Promise((r) => (release = r));
    const s = await startAgent(ep);
    agent = s.agent;
    const relay = await startRelay(s.port);
    try {
      remote = await connectPeer({ host: '127.0.0.1', port: relay.port, psk: PSK });
      const calls = Array.from({ length: 20 }, (_, i) => remote!.read([[i * 4096, 4096]]));
      await until(() => ep.running === 20);
      relay.cut();
      const results = await Promise.allSettled(calls);
      for (const r of results) {
        assert.equal(r.status, 'rejected');
        assert.equal((r as PromiseRejectedResult).reason.code, 'ECONNRESET');
      }
      await assert.rejects(remote.info(), (e: NodeJS.ErrnoException) => e.code === 'ECONNRESET');
      release();
      await until(() => !s.agent.sessionActive);
      assert.equal(s.ends.length, 1);
      assert.ok(s.ends[0].error);
      assert.equal(ep.closed, false);
    } finally {
      release();
      await relay.close();
    }
  });

  it('notices a silent peer (pulled cable) by its idle timeout', async () => {
    const ep = new MemoryEndpoint(MiB);
    let release!: () => void;
    ep.gate = new Promise((r) => (release = r)); // no answer until the end
    const s = await startAgent(ep);
    agent = s.agent;
    const relay = await startRelay(s.port);
    try {
      remote = await connectPeer({ host: '127.0.0.1', port: relay.port, psk: PSK, idleTimeoutMs: 600 });
      const call = remote.read([[0, 4096]]);
      await until(() => ep.running === 1);
      relay.blackhole();
      const t = performance.now();
      await assert.rejects(call, (e: NodeJS.ErrnoException) => e.code === 'ECONNRESET' && /nothing received/.test(e.message));
      assert.ok(performance.now() - t < 10_000);
    } finally {
      release();
      await relay.close();
    }
  });

  it('refuses a write whose extents overlap, in order or not, writing nothing', async () => {
    const ep = new MemoryEndpoint(MiB);
    const before = Buffer.from(ep.disk);
    const s = await startAgent(ep);
    agent = s.agent;
    for (const x of [[[0, 8192], [4096, 4096]], [[8192, 8192], [0, 12288]]] as Extent[][]) {
      const r = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK });
      try {
        await assert.rejects(r.write(x, Buffer.alloc(x.reduce((n, e) => n + e[1], 0), 0xab)), /extents to write overlap/);
      } finally {
        await r.close();
      }
    }
    assert.ok(ep.disk.equals(before), 'nothing written');
  });

  it('refuses a client that speaks another protocol version, naming both', async () => {
    const s = await startAgent(new MemoryEndpoint(MiB));
    agent = s.agent;
    const { conn, frames, closed } = await rawSession(s.port);
    await conn.send(FrameType.HELLO, 0, { protocol: 99, features: [], compression: 'none', rateLimit: null, idleTimeoutMs: 5000 });
    await closed;
    assert.equal(frames[0]?.type, FrameType.ERROR);
    const e = frames[0].json as { code: string; message: string };
    assert.equal(e.code, 'ERR_PROTOCOL');
    assert.match(e.message, new RegExp(`protocol 99, this agent speaks ${PROTOCOL_VERSION}: upgrade drbd-bisync on this node`));
  });

  it('refuses a client older than the lvm calls, saying to upgrade it', async () => {
    const s = await startAgent(new MemoryEndpoint(MiB));
    agent = s.agent;
    const { conn, frames, closed } = await rawSession(s.port);
    await conn.send(FrameType.HELLO, 0, { protocol: 1, features: [], compression: 'none', rateLimit: null, idleTimeoutMs: 5000 });
    await closed;
    assert.match((frames[0].json as { message: string }).message, new RegExp(`the client speaks protocol 1 \\(an older drbd-bisync\\), this agent speaks ${PROTOCOL_VERSION}: upgrade drbd-bisync on the node running plan/merge`));
  });

  it('a client meeting an agent older than the lvm calls says to upgrade the peer', async () => {
    // What a protocol-1 agent answers a newer hello with (its exact words).
    const server = tls.createServer({ ciphers: PSK_CIPHERS, maxVersion: 'TLSv1.2', pskCallback: () => PSK } as tls.TlsOptions, (sock) => {
      const conn = new FramedConnection(sock, sock, 'old client', {
        onFrame: () => void conn.send(FrameType.ERROR, 0, { code: 'ERR_PROTOCOL', message: `the client speaks protocol ${PROTOCOL_VERSION}, this agent speaks 1: run the same drbd-bisync version on both nodes` }).then(() => conn.close()),
        onCorruptFrame: () => undefined,
        onClose: () => undefined,
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as { port: number }).port;
      await assert.rejects(connectPeer({ host: '127.0.0.1', port, psk: PSK }), (e: BisyncError) => {
        assert.match(e.message, new RegExp(`peer 127.0.0.1:\\d+ speaks protocol 1 \\(an older drbd-bisync\\), this client speaks ${PROTOCOL_VERSION}: upgrade drbd-bisync on the peer node`));
        assert.equal(e.refusal, true, 'a refusal: the CLI exits 1, nothing was changed');
        return true;
      });
    } finally {
      server.close();
    }
  });

  it('drops a session that sends garbage, and serves the next client', async () => {
    const ep = new MemoryEndpoint(MiB);
    const s = await startAgent(ep);
    agent = s.agent;
    const { conn, closed } = await rawSession(s.port);
    conn.socket.write(Buffer.alloc(64, 0x41));
    await closed;
    await until(() => !s.agent.sessionActive);
    remote = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK });
    assert.equal((await remote.info()).size, MiB);
  });

  it('ends a session whose client went silent, so the coordinator can reconnect and resume', async () => {
    const ep = new MemoryEndpoint(MiB);
    const s = await startAgent(ep);
    agent = s.agent;
    const relay = await startRelay(s.port);
    try {
      const first = await connectPeer({ host: '127.0.0.1', port: relay.port, psk: PSK, idleTimeoutMs: 500 });
      await first.write([[0, 4096]], Buffer.alloc(4096, 1));
      relay.blackhole();
      await until(() => s.ends.length === 1, 10_000);
      assert.match(String(s.ends[0].error?.message), /nothing received/);
      await first.close().catch(() => undefined);
      remote = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK });
      await remote.write([[4096, 4096]], Buffer.alloc(4096, 2));
      assert.ok((await remote.read([[0, 8192]])).equals(Buffer.concat([Buffer.alloc(4096, 1), Buffer.alloc(4096, 2)])));
      assert.equal(ep.closed, false);
    } finally {
      await relay.close();
    }
  });

  it('gives up connecting when the signal aborts (no hang on a dead path)', async () => {
    const s = await startAgent(new MemoryEndpoint(MiB));
    agent = s.agent;
    const relay = await startRelay(s.port);
    try {
      relay.blackhole();
      const t = performance.now();
      await assert.rejects(connectPeer({ host: '127.0.0.1', port: relay.port, psk: PSK, signal: AbortSignal.timeout(300) }), (e: Error) => e.name === 'TimeoutError');
      assert.ok(performance.now() - t < 5000);
      await assert.rejects(connectPeer({ host: '127.0.0.1', port: relay.port, psk: PSK, connectTimeoutMs: 300 }), (e: NodeJS.ErrnoException) => e.code === 'ETIMEDOUT' && /no answer/.test(e.message));
    } finally {
      await relay.close();
    }
  });

  it('waits for an agent that does not listen yet (waitForAgentMs); without it a refusal fails at once', async () => {
    const port = await freePort();
    const t = performance.now();
    await assert.rejects(connectPeer({ host: '127.0.0.1', port, psk: PSK }), (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED' && /is `drbd-bisync serve` running/.test(e.message));
    await assert.rejects(connectPeer({ host: '127.0.0.1', port, psk: PSK, waitForAgentMs: 300 }), (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED');
    assert.ok(performance.now() - t >= 300, 'tried for the whole wait');
    let retries = 0;
    const connecting = connectPeer({ host: '127.0.0.1', port, psk: PSK, waitForAgentMs: 10_000, onWaitForAgent: () => retries++ });
    await new Promise((r) => setTimeout(r, 500));
    const ep = new MemoryEndpoint(MiB, (d) => d.fill(7));
    agent = new ResyncAgent({ endpoint: ep, psk: PSK, listen: { host: '127.0.0.1', port } });
    await agent.listen();
    const remote = await connecting;
    try {
      assert.ok(retries >= 2, `retried while nothing listened (${retries})`);
      assert.ok((await remote.read([[0, 4096]])).equals(Buffer.alloc(4096, 7)));
    } finally {
      await remote.close();
    }
    await assert.rejects(connectPeer({ host: '127.0.0.1', port: 1, psk: PSK, waitForAgentMs: -1 }), /-1/);
  });

  it('validates its options with errors that name the value', async () => {
    const ep = new MemoryEndpoint(MiB);
    assert.throws(() => new ResyncAgent({ endpoint: ep, psk: Buffer.alloc(4), listen: { host: '127.0.0.1', port: 0 } }), /at least 16 bytes, got 4/);
    assert.throws(() => new ResyncAgent({ endpoint: ep, psk: PSK, listen: { host: '127.0.0.1', port: 70000 } }), /70000/);
    await assert.rejects(connectPeer({ host: '', port: 1, psk: PSK }), /host/);
    await assert.rejects(connectPeer({ host: '127.0.0.1', port: 0, psk: PSK }), /got 0/);
    await assert.rejects(connectPeer({ host: '127.0.0.1', port: 1, psk: PSK, compression: 'lz9' as 'zstd' }), /lz9/);
    await assert.rejects(connectPeer({ host: '127.0.0.1', port: 1, psk: PSK, rateLimit: -5 }), /-5/);
  });
});
