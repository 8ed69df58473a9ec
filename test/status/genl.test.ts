// Generic netlink plumbing against families this host really has (nlctrl and
// friends), and the "drbd module not loaded" answer when it has no drbd.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import { GENL_ID_CTRL, GenlOpFlags, GenlSocket, FamilyNotFoundError, encodeNested, encodeString, encodeU32, listFamilies, parseAttrs, resolveFamily, withGenlSocket } from '../../lib/status/genl';
import { resolveDrbdFamily } from '../../lib/status/drbd-genl';
import { getStatus } from '../../lib/status/status';

describe('status: generic netlink', () => {
  it('resolves nlctrl through CTRL_CMD_GETFAMILY with its ops and multicast group', async () => {
    const f = await resolveFamily('nlctrl');
    assert.equal(f.id, GENL_ID_CTRL);
    assert.equal(f.name, 'nlctrl');
    assert.ok(f.version >= 1);
    const getFamily = f.ops.find((o) => o.id === 3);
    assert.ok(getFamily, 'CTRL_CMD_GETFAMILY is listed');
    assert.ok(getFamily.flags & GenlOpFlags.DUMP, 'GETFAMILY can dump');
    assert.deepEqual(f.groups.map((g) => g.name), ['notify']);
  });

  it('dumps every family; each one resolves by name to the same id', async () => {
    const all = await listFamilies();
    assert.ok(all.length >= 2, `only ${all.length} families`);
    assert.ok(all.some((f) => f.name === 'nlctrl'));
    const other = all.find((f) => f.name !== 'nlctrl')!;
    const again = await resolveFamily(other.name);
    assert.equal(again.id, other.id);
    assert.deepEqual(again.ops, other.ops);
  });

  it('a missing family is ENOENT, SystemError-shaped', async () => {
    await assert.rejects(resolveFamily('no-such-fam'), (e: unknown) => {
      assert.ok(e instanceof FamilyNotFoundError);
      assert.equal(e.code, 'ENOENT');
      assert.equal(e.errno, -2);
      assert.equal(e.syscall, 'genl(CTRL_CMD_GETFAMILY)');
      assert.match(e.message, /no-such-fam/);
      return true;
    });
  });

  it('rejects a bad family name before asking the kernel', async () => {
    await assert.rejects(resolveFamily(''), /1\.\.15 bytes/);
    await assert.rejects(resolveFamily('x'.repeat(16)), /1\.\.15 bytes, got 'xxxx/);
  });

  it('a kernel error on a request comes back with its errno', async () => {
    // GETFAMILY by an id that no family has: the kernel answers ENOENT.
    await withGenlSocket(async (s) => {
      await assert.rejects(s.request(GENL_ID_CTRL, 3, 1, encodeU32(1, 0xfff0)), (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && e.syscall === 'netlink');
      // An unknown command of nlctrl: EOPNOTSUPP.
      await assert.rejects(s.request(GENL_ID_CTRL, 200, 1, Buffer.alloc(0)), (e: NodeJS.ErrnoException) => typeof e.errno === 'number' && e.errno < 0);
    });
  });

  it('receive() on a socket joined to nlctrl "notify" times out with nothing', async () => {
    const f = await resolveFamily('nlctrl');
    const s = await GenlSocket.open([f.groups[0].id]);
    try {
      const t0 = Date.now();
      assert.deepEqual(await s.receive(100), []);
      assert.ok(Date.now() - t0 >= 90);
    } finally {
      await s.close();
    }
    assert.throws(() => s.receive(1), /closed/);
  });

  it('encodes and parses attributes (padding, nesting, flag bits stripped)', () => {
    const buf = Buffer.concat([encodeString(2, 'abc'), encodeNested(7, [encodeU32(1, 5), encodeU32(2, 0xffffffff)], true), encodeU32(3 | 0x4000, 9)]);
    const attrs = parseAttrs(buf);
    assert.deepEqual(attrs.map((a) => a.type), [2, 7, 3]);
    assert.equal(attrs[0].payload.toString(), 'abc\0');
    const inner = parseAttrs(attrs[1].payload);
    assert.deepEqual(inner.map((a) => [a.type, a.payload.readUInt32LE(0)]), [[1, 5], [2, 0xffffffff]]);
    assert.throws(() => parseAttrs(Buffer.from([8, 0, 1, 0, 0])), /length 8, only 5 bytes left/);
  });

  it('without the drbd module: resolving "drbd" and getStatus() say the module is not loaded', async function () {
    if (fs.existsSync('/proc/drbd')) {
      this.test!.title += ' (pending: this host has the drbd module loaded)';
      this.skip();
    }
    await assert.rejects(resolveDrbdFamily(), (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && /drbd kernel module is not loaded/.test(e.message));
    await assert.rejects(getStatus({ kernelLog: [] }), (e: NodeJS.ErrnoException & { hint?: string }) => e.code === 'ENOENT' && /drbd kernel module is not loaded/.test(e.message) && /modprobe drbd/.test(e.hint ?? ''));
    await assert.rejects(getStatus({ source: 'proc', kernelLog: [] }), (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && /\/proc\/drbd does not exist/.test(e.message));
  });
});
