// The bulk data path: batches between a local device and an agent on data
// streams (own TLS-PSK handshake each, then AES-256-GCM records sealed in
// native threads), and the record layer's refusals: a record altered on the
// way, sealed with another key, or replayed writes nothing.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { BlockDevice } from '../../lib/device/block-device';
import type { Extent } from '../../lib/device/extent';
import { toFlat } from '../../lib/device/extent';
import { native } from '../../lib/native/binding';
import { LocalEndpoint } from '../../lib/resync/local-endpoint';
import { ResyncAgent, connectPeer, transferExtents } from '../../lib/transport';
import { Lane, RECORDS_PER_KEY, quiesce } from '../../lib/transport/bulk';
import { openStream } from '../../lib/transport/remote-endpoint';

const PSK = randomBytes(32);
const MiB = 1 << 20;
const SIZE = 64 * MiB;

interface NativeBulk {
  adopt(fd: number): number;
  close(fd: number): void;
  sendExtents(sock: number, key: Buffer, seq: number, id: number, fd: number, path: string, extents: Float64Array, level: number, records: number): Promise<{ wire: number }>;
  recvExtents(sock: number, key: Buffer, seq: number, id: number, fd: number, path: string, extents: Float64Array, verify: boolean, records: number): Promise<{ wire: number; verified?: boolean }>;
  recordBytes: number;
}
const bulk = (native as unknown as { bulk: NativeBulk }).bulk;

function file(dir: string, name: string, data: Buffer): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, data);
  return f;
}

function slice(disk: Buffer, extents: Extent[]): Buffer {
  return Buffer.concat(extents.map(([o, l]) => disk.subarray(o, o + l)));
}

/** Two connected TCP sockets handed to native code; `tamper` flips one byte of what passes from a to b. */
async function socketPair(tamperAt?: number): Promise<{ a: number; b: number; close: () => void }> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const a = net.connect(port, '127.0.0.1');
  await new Promise((r) => a.once('connect', r));
  const s = await accepted;
  server.close();
  const fdOf = (x: net.Socket): number => (x as unknown as { _handle: { fd: number } })._handle.fd;
  if (tamperAt === undefined) {
    const fds = { a: bulk.adopt(fdOf(a)), b: bulk.adopt(fdOf(s)) };
    a.destroy();
    s.destroy();
    return { ...fds, close: () => (bulk.close(fds.a), bulk.close(fds.b)) };
  }
  // A man in the middle: s's bytes are read in JS, one is flipped, and they go out on a second pair.
  const inner = await socketPair();
  let seen = 0;
  const out = inner.a;
  const relay = new net.Socket({ fd: out, readable: false, writable: true });
  s.on('data', (d: Buffer) => {
    const c = Buffer.from(d);
    if (tamperAt >= seen && tamperAt < seen + c.length) c[tamperAt - seen] ^= 0x01;
    seen += c.length;
    relay.write(c);
  });
  const fa = bulk.adopt(fdOf(a));
  a.destroy();
  return { a: fa, b: inner.b, close: () => (bulk.close(fa), s.destroy(), relay.destroy(), bulk.close(inner.b)) };
}

describe('transport: bulk data streams', function () {
  this.timeout(60_000);
  let dir: string;
  let agent: ResyncAgent | undefined;
  const open: Array<{ close(): Promise<void> }> = [];

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bisync-bulk-'));
  });
  afterEach(async () => {
    for (const x of open.splice(0)) await x.close().catch(() => undefined);
    await agent?.close();
    agent = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function serve(data: Buffer): Promise<{ port: number; file: string; errors: Error[] }> {
    const f = file(dir, 'peer.img', data);
    const ep = await LocalEndpoint.open(f, { write: true, plain: true });
    open.push(ep);
    agent = new ResyncAgent({ endpoint: ep, psk: PSK, listen: { host: '127.0.0.1', port: 0 } });
    const errors: Error[] = [];
    agent.on('error', (e: Error) => errors.push(e));
    return { port: (await agent.listen()).port, file: f, errors };
  }

  for (const compression of ['none', 'zstd'] as const) {
    it(`moves batches both ways on data streams and the bytes arrive intact (${compression})`, async () => {
      // Half random, half repetitive: zstd has something to win and something to pass through.
      const mixed = (): Buffer => Buffer.concat([randomBytes(SIZE / 2), Buffer.alloc(SIZE / 2, 'abcdefgh')]);
      const peerData = mixed();
      const localData = mixed();
      const s = await serve(peerData);
      const localFile = file(dir, 'local.img', localData);
      const local = await LocalEndpoint.open(localFile, { write: true, plain: true });
      open.push(local);
      const remote = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK, streams: 3, compression });
      open.push(remote);
      const push: Extent[] = [[0, 8 * MiB], [12 * MiB, 4096], [40 * MiB, 20 * MiB]];
      const pull: Extent[] = [[8 * MiB, 4 * MiB], [20 * MiB, 16 * MiB]];
      await Promise.all([transferExtents(local, remote, push, { batchBytes: 2 * MiB }), transferExtents(remote, local, pull, { batchBytes: 2 * MiB })]);
      await Promise.all([remote.flush(), local.flush()]);
      assert.equal(remote.streamCount, 3);
      assert.ok(slice(fs.readFileSync(s.file), push).equals(slice(localData, push)), 'pushed extents differ on the peer');
      assert.ok(slice(fs.readFileSync(localFile), pull).equals(slice(peerData, pull)), 'pulled extents differ locally');
      const st = remote.stats();
      const moved = 48 * MiB + 4096;
      const wire = st.wireBytesSent + st.wireBytesReceived;
      if (compression === 'none') assert.ok(wire <= 1.01 * moved && wire >= moved, `wire ${wire} for ${moved} moved`);
      else assert.ok(wire < 0.75 * moved, `zstd on data streams: wire ${wire} for ${moved} moved`);
      assert.deepEqual(s.errors, []);
    });
  }

  it('holds the rate limit in each direction across all data streams together (order of magnitude)', async () => {
    const s = await serve(randomBytes(SIZE));
    const local = await LocalEndpoint.open(file(dir, 'local.img', randomBytes(SIZE)), { write: true, plain: true });
    open.push(local);
    const rate = 8 * MiB;
    const remote = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK, streams: 4, rateLimit: rate });
    open.push(remote);
    const t = performance.now();
    // 16 MiB each way in 1 MiB batches spread over four streams: at 8 MiB/s, about 2 s, not 0.5 s.
    await Promise.all([
      transferExtents(local, remote, [[0, 16 * MiB]], { batchBytes: MiB }),
      transferExtents(remote, local, [[32 * MiB, 16 * MiB]], { batchBytes: MiB }),
    ]);
    const seconds = (performance.now() - t) / 1000;
    assert.equal(remote.streamCount, 4);
    assert.ok(seconds >= 1.5 && seconds < 20, `16 MiB each way at 8 MiB/s took ${seconds.toFixed(2)} s`);
  });

  it('fails a batch the agent refuses with the agent\'s error instead of hanging on the stream', async () => {
    const s = await serve(randomBytes(SIZE / 4));
    const local = await LocalEndpoint.open(file(dir, 'local.img', randomBytes(SIZE)), { write: true, plain: true });
    open.push(local);
    const remote = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK, streams: 2 });
    open.push(remote);
    // 8 MiB past the end of the agent's 16 MiB device: more than a socket buffer holds.
    await assert.rejects(transferExtents(local, remote, [[SIZE / 2, 8 * MiB]]), /past the end of/);
    await assert.rejects(transferExtents(remote, local, [[SIZE / 2, 8 * MiB]]), /past the end of|closed/);
  });

  it('opens the data streams ahead of the first batch when told a transfer is coming, and a session that then moves nothing ends cleanly', async () => {
    const s = await serve(randomBytes(SIZE));
    const localFile = file(dir, 'local.img', randomBytes(SIZE));
    const local = await LocalEndpoint.open(localFile, { write: true, plain: true });
    open.push(local);
    const remote = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK, streams: 2 });
    assert.equal(remote.streamCount, 0, 'no streams before the hint');
    remote.prepareTransfer();
    for (let i = 0; i < 200 && remote.streamCount < 2; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(remote.streamCount, 2, 'both streams open with no batch sent');
    await remote.close(); // nothing moved: the streams close with the session
    // The agent serves the next session as usual, and its streams carry data.
    const again = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK, streams: 2 });
    open.push(again);
    await transferExtents(local, again, [[0, 4 * MiB]]);
    assert.equal(again.streamCount, 2);
    assert.ok(slice(fs.readFileSync(s.file), [[0, 4 * MiB]]).equals(slice(fs.readFileSync(localFile), [[0, 4 * MiB]])));
    assert.deepEqual(s.errors, []);
  });

  it('moves 32 MiB batches on data streams (records keep memory flat), 8 MiB under a rate limit, without streams or when each batch is read for the archive', async () => {
    const s = await serve(randomBytes(SIZE));
    const local = await LocalEndpoint.open(file(dir, 'local.img', randomBytes(SIZE)), { write: true, plain: true });
    open.push(local);
    const sizes = async (o: { streams: number; rateLimit?: number }, archive = false): Promise<number[]> => {
      const remote = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK, ...o });
      try {
        const seen: number[] = [];
        await transferExtents(local, remote, [[0, SIZE]], { onBatch: (_b, n) => seen.push(n), ...(archive ? { beforeWrite: async () => undefined } : {}) });
        return seen;
      } finally {
        await remote.close();
      }
    };
    assert.deepEqual(await sizes({ streams: 2 }), Array(SIZE / (32 * MiB)).fill(32 * MiB));
    assert.deepEqual(await sizes({ streams: 2, rateLimit: 1024 * MiB }), Array(SIZE / (8 * MiB)).fill(8 * MiB));
    assert.deepEqual(await sizes({ streams: 0 }), Array(SIZE / (8 * MiB)).fill(8 * MiB));
    // Each batch read into memory first (for the archive): 8 MiB.
    assert.deepEqual(await sizes({ streams: 2 }, true), Array(SIZE / (8 * MiB)).fill(8 * MiB));
  });

  it('closes the data streams that opened when another one is refused: no descriptor is left behind', async () => {
    const s = await serve(randomBytes(SIZE));
    const fds = (): number => fs.readdirSync('/proc/self/fd').length;
    const before = fds();
    const remote = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK, streams: 3 });
    // The agent turns stream 1 away; 0 and 2 open.
    const session = (agent as unknown as { active: { admits(t: unknown, i: unknown): boolean } }).active;
    const admits = session.admits.bind(session);
    session.admits = (t, i) => i !== 1 && admits(t, i);
    const local = await LocalEndpoint.open(file(dir, 'local.img', randomBytes(SIZE)), { write: true, plain: true });
    await assert.rejects(transferExtents(local, remote, [[0, MiB]]), /refused|closed|ECONNRESET|data stream/);
    await remote.close();
    await local.close();
    for (let i = 0; i < 100 && fds() > before; i++) await new Promise((r) => setTimeout(r, 20));
    // At most as many as before: an earlier test's descriptor may close meanwhile; none of ours may stay open.
    assert.ok(fds() <= before, `every socket the client opened is closed again (${fds()} descriptors, ${before} before)`);
  });

  it('keeps block data on the control connection with streams: 0', async () => {
    const s = await serve(randomBytes(SIZE));
    const local = await LocalEndpoint.open(file(dir, 'local.img', randomBytes(SIZE)), { write: true, plain: true });
    open.push(local);
    const remote = await connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK, streams: 0 });
    open.push(remote);
    await transferExtents(local, remote, [[0, 4 * MiB]]);
    assert.equal(remote.streamCount, 0);
    await assert.rejects(connectPeer({ host: '127.0.0.1', port: s.port, psk: PSK, streams: -1 }), /streams must be an integer from 0 .* got -1/);
  });

  it('refuses a data stream with the wrong key in its handshake, and one that names no session', async () => {
    const s = await serve(randomBytes(SIZE));
    const o = { host: '127.0.0.1', port: s.port, psk: randomBytes(32) };
    await assert.rejects(openStream(o, 'test agent', randomBytes(16).toString('hex'), 0), /authentication failed/);
    // The right key but a token of no session: the agent drops it before its answer.
    await assert.rejects(openStream({ ...o, psk: PSK }, 'test agent', randomBytes(16).toString('hex'), 0), (e: NodeJS.ErrnoException) => e.code === 'ECONNRESET');
    assert.ok(s.errors.some((e) => /names no session/.test(e.message)), s.errors.map((e) => e.message).join('; '));
  });

  describe('records', () => {
    let src: BlockDevice;
    let dst: BlockDevice;
    const key = randomBytes(32);
    const x: Extent[] = [[0, MiB], [3 * MiB, 64 * 1024]];
    let zero: Buffer;

    beforeEach(async () => {
      src = await BlockDevice.open(file(dir, 'src.img', randomBytes(4 * MiB)));
      zero = Buffer.alloc(4 * MiB);
      dst = await BlockDevice.open(file(dir, 'dst.img', zero), { write: true });
    });
    afterEach(async () => {
      await src.close();
      await dst.close();
    });

    // x is 1 MiB + 64 KiB: three records (512 KiB, 512 KiB, 64 KiB).
    const RECORDS = 3;
    const send = (sock: number, seq: number, k = key): Promise<unknown> => bulk.sendExtents(sock, k, seq, 7, src.handle('t'), src.path, toFlat(x), 0, RECORDS);
    const recv = (sock: number, seq: number, k = key): Promise<unknown> => bulk.recvExtents(sock, k, seq, 7, dst.handle('t'), dst.path, toFlat(x), false, RECORDS);
    const untouched = (): boolean => fs.readFileSync(dst.path).equals(zero);

    it('opens what was sealed with the same key and sequence number', async () => {
      const p = await socketPair();
      try {
        await Promise.all([send(p.a, 0), recv(p.b, 0)]);
        assert.ok(slice(fs.readFileSync(dst.path), x).equals(slice(fs.readFileSync(src.path), x)));
      } finally {
        p.close();
      }
    });

    for (const level of [0, 1]) {
      it(`reads a batch back after writing it and says so when asked (zstd level ${level})`, async () => {
        const p = await socketPair();
        try {
          const [, r] = await Promise.all([
            bulk.sendExtents(p.a, key, 0, 7, src.handle('t'), src.path, toFlat(x), level, RECORDS),
            bulk.recvExtents(p.b, key, 0, 7, dst.handle('t'), dst.path, toFlat(x), true, RECORDS),
          ]);
          assert.equal(r.verified, true);
          assert.ok(slice(fs.readFileSync(dst.path), x).equals(slice(fs.readFileSync(src.path), x)));
          // Without asking, no read-back.
          const [, r2] = await Promise.all([send(p.a, 1), recv(p.b, 1)]);
          assert.equal((r2 as { verified?: boolean }).verified, undefined);
        } finally {
          p.close();
        }
      });
    }

    // What a split brain leaves: scattered 4 KiB blocks, 128 to a record. Whole blocks go to
    // the device together (one submission per record); an odd-sized extent, and the ones after
    // it that sit at an unaligned place in the record, go one at a time through a bounce buffer.
    const scattered: Extent[] = [
      ...Array.from({ length: 300 }, (_, i): Extent => [i * 3 * 4096 + (i % 2) * 4096, 4096]),
      [3 * MiB + 4096, 1000],
      [3 * MiB + 8 * 4096, 3 * 4096],
      [3 * MiB + 16 * 4096, 4096],
    ];
    const records = (e: Extent[]): number => Math.ceil(e.reduce((n, [, l]) => n + l, 0) / bulk.recordBytes);

    for (const [what, extents] of [['the batch', x], ['a batch of scattered blocks too (written together, read back together)', scattered]] as const) {
      it(`reads back from the device, not from its buffer: a device that loses writes fails ${what}`, async () => {
        // /dev/zero takes every write and reads back zeros: the lost write a read-back must catch.
        const lossy = fs.openSync('/dev/zero', 'r+');
        const p = await socketPair();
        try {
          const [, r] = await Promise.allSettled([
            bulk.sendExtents(p.a, key, 0, 7, src.handle('t'), src.path, toFlat(extents), 0, records(extents)),
            bulk.recvExtents(p.b, key, 0, 7, lossy, '/dev/zero', toFlat(extents), true, records(extents)),
          ]);
          assert.equal(r.status, 'rejected');
          const e = (r as PromiseRejectedResult).reason as NodeJS.ErrnoException;
          assert.equal(e.syscall, 'verify');
          assert.equal(e.path, '/dev/zero');
          // The first block differs unless the source's first bytes happen to be zeros.
          const at = /the device returned other bytes than were written, first at offset (\d+)/.exec(e.message);
          assert.ok(at && Number(at[1]) < 4096, e.message);
        } finally {
          p.close();
          fs.closeSync(lossy);
        }
      });
    }

    it('moves records of many scattered 4 KiB blocks and odd-sized extents intact, writing nothing between them, and reads them back', async () => {
      const p = await socketPair();
      try {
        const [, r] = await Promise.all([
          bulk.sendExtents(p.a, key, 0, 7, src.handle('t'), src.path, toFlat(scattered), 0, records(scattered)),
          bulk.recvExtents(p.b, key, 0, 7, dst.handle('t'), dst.path, toFlat(scattered), true, records(scattered)),
        ]);
        assert.equal(r.verified, true);
        const want = Buffer.alloc(4 * MiB);
        const from = fs.readFileSync(src.path);
        for (const [o, l] of scattered) from.copy(want, o, o, o + l);
        assert.ok(fs.readFileSync(dst.path).equals(want), 'the extents hold the source bytes and every other byte is still zero');
      } finally {
        p.close();
      }
    });

    it('refuses a record sealed with another key, writing nothing', async () => {
      const p = await socketPair();
      try {
        const [, r] = await Promise.allSettled([send(p.a, 0, randomBytes(32)), recv(p.b, 0)]);
        assert.equal(r.status, 'rejected');
        assert.match(((r as PromiseRejectedResult).reason as Error).message, /authentication tag mismatch/);
        assert.equal(((r as PromiseRejectedResult).reason as NodeJS.ErrnoException).code, 'EBADMSG');
        assert.ok(untouched());
      } finally {
        p.close();
      }
    });

    it('refuses a record with one byte altered on the way, writing nothing', async () => {
      const p = await socketPair(32 + 5000); // a byte of the ciphertext, past the header
      try {
        const [, r] = await Promise.allSettled([send(p.a, 0), recv(p.b, 0)]);
        assert.equal(r.status, 'rejected');
        assert.equal(((r as PromiseRejectedResult).reason as NodeJS.ErrnoException).code, 'EBADMSG');
        assert.ok(untouched());
      } finally {
        p.close();
      }
    });

    it('writes each record of a batch only after its own tag held: an altered third record leaves the first two written, the third not', async () => {
      const record = 32 + 512 * 1024 + 16; // header, ciphertext, tag
      const p = await socketPair(2 * record + 32 + 100); // a byte of the third record's ciphertext
      try {
        const [, r] = await Promise.allSettled([send(p.a, 0), recv(p.b, 0)]);
        assert.equal(r.status, 'rejected');
        assert.equal(((r as PromiseRejectedResult).reason as NodeJS.ErrnoException).code, 'EBADMSG');
        const got = fs.readFileSync(dst.path);
        assert.ok(got.subarray(0, MiB).equals(fs.readFileSync(src.path).subarray(0, MiB)), 'the first two records were written');
        assert.ok(got.subarray(3 * MiB, 3 * MiB + 64 * 1024).equals(Buffer.alloc(64 * 1024)), 'the altered record was not');
      } finally {
        p.close();
      }
    });

    it('refuses a compressed record that claims to be longer than its plain text, before allocating or opening it', async () => {
      for (const cipherBytes of [512 * 1024, 2 ** 30 - 16]) {
        const p = await socketPair();
        try {
          // A forged header needs no key: magic 'BSB1', kind 2 (zstd), sequence 0, batch 7, lengths.
          const h = Buffer.alloc(32);
          h.writeUInt32LE(0x31425342, 0);
          h[4] = 2;
          h.writeUInt32LE(7, 16);
          h.writeUInt32LE(cipherBytes, 20);
          h.writeUInt32LE(512 * 1024, 24);
          fs.writeSync(p.a, h);
          await assert.rejects(recv(p.b, 0), (e: NodeJS.ErrnoException) => e.code === 'EPROTO' && /does not fit/.test(e.message));
          assert.ok(untouched());
        } finally {
          p.close();
        }
      }
    });

    it('refuses a batch whose record count is not what the lane reserved, before a byte moves', async () => {
      const p = await socketPair();
      try {
        // Nothing is ever sent to the receiver: only a check before any I/O can end this call.
        await assert.rejects(bulk.recvExtents(p.b, key, 0, 7, dst.handle('t'), dst.path, toFlat(x), false, 1),
          (e: NodeJS.ErrnoException) => e.code === 'EPROTO' && /makes 3 records .* but 1 sequence numbers were reserved/.test(e.message));
        await assert.rejects(bulk.sendExtents(p.a, key, 0, 7, src.handle('t'), src.path, toFlat(x), 0, 4), /makes 3 records .* but 4 sequence numbers/);
        // The stream is still in step: a correct batch goes through.
        await Promise.all([send(p.a, 0), recv(p.b, 0)]);
        assert.ok(slice(fs.readFileSync(dst.path), x).equals(slice(fs.readFileSync(src.path), x)));
      } finally {
        p.close();
      }
    });

    it('refuses a replayed record (the receiver expects the next sequence number), writing nothing new', async () => {
      const p = await socketPair();
      try {
        // Three records: sequence numbers 0-2.
        assert.equal(bulk.recordBytes, 512 * 1024);
        await Promise.all([send(p.a, 0), recv(p.b, 0)]);
        fs.writeFileSync(dst.path, zero);
        // The same batch again (same key, sequence 0) where sequence 3 is due.
        const [, r] = await Promise.allSettled([send(p.a, 0), recv(p.b, 3)]);
        assert.equal(r.status, 'rejected');
        assert.match(((r as PromiseRejectedResult).reason as Error).message, /sequence 0, expected 3/);
        assert.ok(untouched());
      } finally {
        p.close();
      }
    });

    it('gives a batch consecutive sequence numbers under one key, skipping to the next key rather than straddling two', async () => {
      const base = randomBytes(32);
      const seen: Array<[Buffer, number]> = [];
      const op = async (k: Buffer, seq: number): Promise<void> => void seen.push([Buffer.from(k), seq]);
      const lane = new Lane(base, RECORDS_PER_KEY - 2);
      await lane.next(op, 1); // RECORDS_PER_KEY - 2
      await lane.next(op, 3); // would end past the boundary: starts at RECORDS_PER_KEY
      await lane.next(op, 2); // RECORDS_PER_KEY + 3
      assert.deepEqual(seen.map(([, q]) => q), [RECORDS_PER_KEY - 2, RECORDS_PER_KEY, RECORDS_PER_KEY + 3]);
      assert.ok(seen[0][0].equals(base));
      assert.ok(!seen[1][0].equals(base), 'a new key from the boundary on');
      assert.ok(seen[2][0].equals(seen[1][0]));
      // Both ends derive the same: a second lane from the same base agrees record for record.
      const other: number[] = [];
      const lane2 = new Lane(base, RECORDS_PER_KEY - 2);
      for (const n of [1, 3, 2]) await lane2.next(async (k, seq) => void other.push(seq), n);
      assert.deepEqual(other, seen.map(([, q]) => q));
    });
  });
});

describe('transport: handing a data stream\'s socket over', () => {
  it('quiesce gives up when the socket is destroyed under it (a handshake deadline) instead of polling forever', async () => {
    const raw = new net.Socket();
    const sock = new tls.TLSSocket(raw);
    sock.on('error', () => undefined);
    const waiting = quiesce(sock, raw);
    sock.destroy();
    raw.destroy();
    await assert.rejects(waiting, /closed before its TLS handshake was handed over/);
  });
});
