import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { FrameHeader, FrameReader, FrameType, HEADER_BYTES, MAX_PAYLOAD_BYTES, decodeHeader, encodeHeader, extentsFromBuffer, extentsToBuffer, nb } from '../../lib/transport/wire';

function frame(id: number, json: string, payload: Buffer): Buffer {
  const j = Buffer.from(json);
  const checksum = nb.hashBuffers([j, payload]);
  return Buffer.concat([encodeHeader({ type: FrameType.REQUEST, flags: 0, id, jsonBytes: j.length, wireBytes: payload.length, rawBytes: payload.length, checksum }), j, payload]);
}

describe('transport: frame format', () => {
  it('reassembles frames however the stream is cut into chunks', () => {
    const sent = Array.from({ length: 50 }, (_, i) => ({ id: i + 1, json: JSON.stringify({ m: 'read', n: i }), payload: randomBytes(Math.floor(Math.random() * 70000)) }));
    const stream = Buffer.concat(sent.map((f) => frame(f.id, f.json, f.payload)));
    for (let round = 0; round < 5; round++) {
      const got: Array<{ h: FrameHeader; body: Buffer }> = [];
      const reader = new FrameReader((h, body) => got.push({ h, body }));
      for (let pos = 0; pos < stream.length; ) {
        const n = 1 + Math.floor(Math.random() * (round === 0 ? 7 : 40000));
        reader.push(stream.subarray(pos, pos + n));
        pos += n;
      }
      assert.equal(got.length, sent.length);
      got.forEach(({ h, body }, i) => {
        assert.equal(h.id, sent[i].id);
        assert.equal(body.toString('utf8', 0, h.jsonBytes), sent[i].json);
        assert.ok(body.subarray(h.jsonBytes).equals(sent[i].payload));
        assert.ok(nb.hashBuffers([body]).equals(h.checksum));
      });
    }
  });

  it('costs 40 bytes per frame', () => {
    assert.equal(frame(1, '', Buffer.alloc(8 << 20)).length, HEADER_BYTES + (8 << 20));
    assert.equal(HEADER_BYTES, 40);
  });

  it('rejects a stream that is not ours, or sizes beyond the limits, as ERR_PROTOCOL', () => {
    assert.throws(() => decodeHeader(Buffer.alloc(HEADER_BYTES, 0x41)), (e: NodeJS.ErrnoException) => e.code === 'ERR_PROTOCOL' && /magic 0x4141/.test(e.message));
    const h = encodeHeader({ type: FrameType.REPLY, flags: 0, id: 1, jsonBytes: 0, wireBytes: MAX_PAYLOAD_BYTES + 1, rawBytes: MAX_PAYLOAD_BYTES + 1, checksum: Buffer.alloc(16) });
    assert.throws(() => decodeHeader(h), /exceeds the limit/);
    const bad = encodeHeader({ type: FrameType.REPLY, flags: 0, id: 1, jsonBytes: 0, wireBytes: 0, rawBytes: 0, checksum: Buffer.alloc(16) });
    bad[2] = 99;
    assert.throws(() => decodeHeader(bad), /unknown frame type 99/);
  });

  it('round-trips extents and refuses ones that are not whole non-negative numbers', () => {
    const x: Array<[number, number]> = [[0, 4096], [2 ** 40, 1 << 20], [Number.MAX_SAFE_INTEGER - 1, 1]];
    assert.deepEqual(extentsFromBuffer(extentsToBuffer(x), 3), x);
    assert.throws(() => extentsFromBuffer(extentsToBuffer([[1.5, 4096]]), 1), /extent 0 \[1\.5, 4096\]/);
    assert.throws(() => extentsFromBuffer(extentsToBuffer([[-4096, 4096]]), 1), /non-negative/);
    assert.throws(() => extentsFromBuffer(Buffer.alloc(16), 2), /does not fit/);
  });

  it('compresses through zstd and back, and refuses a damaged frame', async () => {
    const data = Buffer.from('drbd-bisync '.repeat(100000));
    const z = await nb.compress([data.subarray(0, 5000), data.subarray(5000)], 1);
    assert.ok(z.length < data.length / 10);
    assert.ok((await nb.decompress(z, data.length)).equals(data));
    z[z.length >> 1] ^= 0xff;
    await assert.rejects(nb.decompress(z, data.length), (e: NodeJS.ErrnoException) => e.syscall === 'ZSTD_decompress' && typeof e.errno === 'number');
    await assert.rejects(nb.decompress(await nb.compress([data], 1), data.length - 1), /ZSTD_decompress/);
  });
});
