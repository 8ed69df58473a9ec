// The addon's own argument checks: a JS number is a double, and casting one
// the addon cannot hold exactly (1.5, -4096, 2^53 + 2, NaN) to an integer
// would silently read or write somewhere else. Each is refused with a
// RangeError (TypeError for a non-number) that names the argument.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../../lib/native/binding';
import { tmpDir } from '../helpers/env';

const nb = native as typeof native & {
  bitmapScan(fd: number, path: string, areaOffset: number, maxPeers: number, slot: number, firstWord: number, nWords: number, nBits: number): Promise<unknown>;
};

describe('native arguments: no unchecked double → integer casts', () => {
  let dir = '';
  let file = '';
  let fd = -1;
  before(async () => {
    dir = tmpDir('bisync-native-args-');
    file = path.join(dir, 'dev.img');
    fs.writeFileSync(file, Buffer.alloc(1 << 20));
    fd = (await native.open(file, true, false, false)).fd;
  });
  after(async () => {
    await native.close(fd, file);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const rejects = (call: () => Promise<unknown>, type: ErrorConstructor, message: RegExp) => assert.rejects(async () => call(), (e: Error) => {
    assert.ok(e instanceof type, `${e.constructor.name}: ${e.message}`);
    assert.match(e.message, message);
    return true;
  });
  const ext = (...v: number[]) => new Float64Array(v);

  const EXTENT_CASES: Array<[string, Float64Array, RegExp]> = [
    ['a fractional offset', ext(1.5, 4096), /extents\[0\] offset must be an integer within \+-2\^53, got 1.5/],
    ['a negative length', ext(0, 4096, 8192, -4096), /extents\[1\] length must be an integer from 0 to 9007199254740992, got -4096/],
    ['an offset beyond 2^53', ext(2 ** 53 + 2, 4096), /extents\[0\] offset must be an integer within \+-2\^53, got 9007199254740994/],
    ['NaN', ext(NaN, 4096), /extents\[0\] offset must be an integer within \+-2\^53, got nan/i],
    ['an extent ending beyond 2^53', ext(2 ** 53 - 4096, 8192), /extents\[0\] ends at 9007199254745088, beyond 2\^53/],
    ['an odd number of values', ext(0, 4096, 8192), /extents \(argument 2\) must hold \[offset, length\] pairs, got 3 numbers/],
  ];
  for (const [what, extents, message] of EXTENT_CASES) {
    it(`hash, gather and copy refuse ${what}`, async () => {
      await rejects(() => native.hash(fd, file, extents, 4096), RangeError, message);
      const total = Array.from(extents).filter((_, i) => i % 2 === 1).reduce((s, n) => s + (Number.isFinite(n) && n > 0 ? n : 0), 0);
      await rejects(() => native.gather(fd, file, extents, Buffer.alloc(total)), RangeError, message);
      await rejects(() => native.copy(fd, file, fd, file, extents), RangeError, new RegExp(message.source.replace('argument 2', 'argument 4')));
    });
  }

  it('extents must be a Float64Array', async () => {
    await rejects(() => native.hash(fd, file, new Uint32Array([0, 4096]) as unknown as Float64Array, 4096), TypeError, /extents \(argument 2\) must be a Float64Array/);
  });

  it('block sizes, descriptors, buffer ranges and positions are checked too', async () => {
    await rejects(() => native.hash(fd, file, ext(0, 4096), 4096.5), RangeError, /blockSize \(argument 3\) must be an integer/);
    await rejects(() => native.hash(fd + 0.5, file, ext(0, 4096), 4096), RangeError, /fd \(argument 0\) must be an integer/);
    await rejects(() => native.hash('3' as unknown as number, file, ext(0, 4096), 4096), TypeError, /fd \(argument 0\) must be a number/);
    const buf = Buffer.alloc(8192);
    await rejects(() => native.read(fd, file, buf, 0.5, 4096, 0), RangeError, /bufferOffset \(argument 3\) must be an integer/);
    await rejects(() => native.read(fd, file, buf, 0, -1, 0), RangeError, /length \(argument 4\) must be an integer from 0/);
    await rejects(() => native.write(fd, file, buf, 0, 4096, -4096), RangeError, /position \(argument 5\) must be an integer from 0 to 9007199254740992, got -4096/);
    await rejects(() => native.write(fd, file, buf, 0, 4096, 2 ** 64), RangeError, /position \(argument 5\) must be an integer within \+-2\^53, got 1.8446744073709552e\+19/);
    await rejects(() => native.discard(fd, file, 0.25, 4096), RangeError, /offset \(argument 2\) must be an integer/);
    await rejects(() => nb.bitmapScan(fd, file, -4096, 1, 0, 0, 1, 64), RangeError, /areaOffset \(argument 2\) must be an integer from 0/);
  });

  it('the data streams\' sendExtents and recvExtents check their extents, descriptors and record numbers the same way', () => {
    // Thrown before any thread starts or any byte moves on the (here unused) socket.
    const bulk = (native as unknown as { bulk: Record<'sendExtents' | 'recvExtents', (...a: unknown[]) => Promise<unknown>> }).bulk;
    const key = Buffer.alloc(32);
    const throwsLike = (call: () => unknown, type: ErrorConstructor, message: RegExp) => assert.throws(call, (e: Error) => {
      assert.ok(e instanceof type, `${e.constructor.name}: ${e.message}`);
      assert.match(e.message, message);
      return true;
    });
    for (const [, extents, message] of EXTENT_CASES) {
      const m = new RegExp(message.source.replace('argument 2', 'argument 6'));
      throwsLike(() => bulk.sendExtents(0, key, 0, 1, fd, file, extents, 0, 1), RangeError, m);
      throwsLike(() => bulk.recvExtents(0, key, 0, 1, fd, file, extents, false), RangeError, m);
    }
    throwsLike(() => bulk.sendExtents(-1, key, 0, 1, fd, file, ext(0, 4096), 0, 1), RangeError, /sock \(argument 0\) must be an integer from 0/);
    throwsLike(() => bulk.recvExtents(0, key, 1.5, 1, fd, file, ext(0, 4096), false), RangeError, /seq \(argument 2\) must be an integer/);
    throwsLike(() => bulk.recvExtents(0, key, 0, 2 ** 32, fd, file, ext(0, 4096), false), RangeError, /id \(argument 3\) must be an integer from 0 to 4294967295/);
    throwsLike(() => bulk.recvExtents(0, key, 0, 1, fd + 0.5, file, ext(0, 4096), false), RangeError, /fd \(argument 4\) must be an integer/);
    throwsLike(() => bulk.sendExtents(0, key, 0, 1, fd, file, ext(0, 4096), 0, -1), RangeError, /records \(argument 8\) must be an integer/);
    throwsLike(() => bulk.recvExtents(0, key, 0, 1, fd, file, ext(0, 4096), false, 0.5), RangeError, /records \(argument 8\) must be an integer/);
  });

  it('a length sum past 2^64 is not taken for the small number it wraps to', async () => {
    // 2048 lengths of 2^53 sum to 2^64: wrapped, with one more 4 KiB the sum would match a 4 KiB buffer.
    const huge = new Float64Array(2 * 2049);
    for (let i = 0; i < 2048; i++) huge[2 * i + 1] = 2 ** 53;
    huge[2 * 2048 + 1] = 4096;
    await rejects(() => native.gather(fd, file, huge, Buffer.alloc(4096)), RangeError, /extents cover 18446744073709551615 bytes but the buffer holds 4096/);
  });

  it('recvExtents refuses a batch over 1 GiB before laying out its records, as sendExtents does', async () => {
    const bulk = (native as unknown as { bulk: Record<'recvExtents', (...a: unknown[]) => Promise<unknown>> }).bulk;
    // The socket (0) is never touched: the size is checked first.
    await assert.rejects(bulk.recvExtents(0, Buffer.alloc(32), 0, 1, fd, file, ext(0, 2 ** 31), false, 1), (e: NodeJS.ErrnoException) => {
      assert.match(e.message, /batch of 2147483648 bytes exceeds 1 GiB/);
      assert.equal(e.code, 'EINVAL');
      return true;
    });
  });

  it('still accepts valid integers up to the device end', async () => {
    const h = await native.hash(fd, file, ext(0, 4096, (1 << 20) - 4096, 4096), 4096);
    assert.equal(h.digests.length, 32);
  });
});
