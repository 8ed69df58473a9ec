// DRBD attribute tables and enums. The 8.4 side is covered by the lab's real
// replies (lab-recordings.test.ts); DRBD 9 (family version 2) has no kernel
// here, so these messages are encoded by hand from linux/drbd_genl.h.
import { strict as assert } from 'node:assert';
import { connectionOf9, decodeDrbdMessage, decodeState84, drbdRequestPayload, progressOf, resourcesFromObjects } from '../../lib/status/drbd-genl';
import { GenlMessage, encodeAttr, encodeNested, encodeString, encodeU32, parseAttrs } from '../../lib/status/genl';

const u64 = (type: number, v: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return encodeAttr(type, b);
};
function msg(cmd: number, minor: number, ...tlas: Buffer[]): GenlMessage {
  const hdr = Buffer.alloc(8);
  hdr.writeUInt32LE(minor >>> 0, 0);
  return { type: 30, flags: 2, seq: 1, cmd, version: 2, payload: Buffer.concat([hdr, ...tlas]) };
}
// DRBD_GENLA_F_MANDATORY (1 << 14) is ORed into some field types by older modules.
const ctx = (res: string, extra: Buffer[] = []) => encodeNested(2, [encodeString(2 | 0x4000, res), ...extra]);

describe('status: DRBD netlink tables', () => {
  it('the 8.4 state word: role, peer, conn, disk, pdsk bitfields', () => {
    // 37129 is what the lab's SyncSource primary reported (UpToDate/Inconsistent).
    assert.deepEqual(decodeState84(37129), { role: 'Primary', peer: 'Secondary', conn: 'SyncSource', disk: 'UpToDate', pdsk: 'Inconsistent', susp: false });
    assert.equal(decodeState84(0).conn, 'StandAlone');
    assert.equal(decodeState84(31 << 4).conn, 'conn(31)');
  });

  it('DRBD 9 object dumps: version-2 disk states, connection + replication, sectors to bytes, bitmap UUID', () => {
    const peerCtx = [encodeU32(6, 1), encodeString(5, 'nodeb')];
    const [r] = resourcesFromObjects(2, {
      resources: [decodeDrbdMessage(msg(30, 0xffffffff, ctx('r9'), encodeNested(15, [encodeU32(1, 1)])))],
      devices: [decodeDrbdMessage(msg(31, 5, ctx('r9', [encodeU32(1, 0)]), encodeNested(16, [encodeU32(1, 9), encodeString(4, '/dev/sdb')]), encodeNested(20, [u64(1, 2048n), u64(12, 0xabcdefn)])))],
      connections: [decodeDrbdMessage(msg(32, 0xffffffff, ctx('r9', peerCtx), encodeNested(17, [encodeU32(1, 9), encodeU32(2, 2)])))],
      peerDevices: [decodeDrbdMessage(msg(33, 5, ctx('r9', [encodeU32(1, 0), ...peerCtx]), encodeNested(18, [encodeU32(1, 16), encodeU32(2, 5)]),
        encodeNested(22, [u64(5, 800n), u64(7, 0x1234n), u64(10, 1600n)])))],
    });
    assert.deepEqual([r.name, r.minor, r.role, r.peerRole, r.connection, r.disk, r.peerDisk], ['r9', 5, 'Primary', 'Secondary', 'SyncSource', 'UpToDate', 'Inconsistent']);
    assert.equal(r.outOfSyncBytes, 800 * 512);
    assert.deepEqual(r.peers.map((p) => [p.name, p.nodeId, p.volumes[0].replication]), [['nodeb', 1, 'SyncSource']]);
    assert.deepEqual(r.uuids, { current: '0000000000ABCDEF', bitmap: '0000000000001234', history: [] });
    assert.equal(r.volumes[0].backingDevice, '/dev/sdb');
    assert.equal(r.volumes[0].sizeBytes, 2048 * 512);
    assert.deepEqual(r.syncProgress, progressOf(1600 / 8, 800 / 8));
  });

  it('connection names: Connecting is WFConnection on an 8.4 module; Established is Connected', () => {
    assert.equal(connectionOf9('Connecting', undefined, 2), 'Connecting');
    assert.equal(connectionOf9('Connecting', 'Off', 1), 'WFConnection');
    assert.equal(connectionOf9('Connected', 'Established'), 'Connected');
    assert.equal(connectionOf9('Connected', 'PausedSyncT'), 'PausedSyncT');
    assert.equal(connectionOf9('StandAlone', 'Off'), 'StandAlone');
  });

  it('progress like /proc/drbd: per mille of bits >> 10 (the lab: 97816 of 131032 KiB left is 28.2%)', () => {
    assert.equal(progressOf(131032 / 4, 97816 / 4).percent, 28.2);
    assert.equal(progressOf(0, 0).percent, 100);
    assert.equal(progressOf(100, 500).remainingBytes, 100 * 4096); // left never exceeds total
  });

  it('requests carry the drbd header and an optional resource filter', () => {
    const p = drbdRequestPayload('r0');
    assert.equal(p.readUInt32LE(0), 0xffffffff);
    const [tla] = parseAttrs(p, 8);
    assert.equal(tla.type, 2);
    assert.equal(parseAttrs(tla.payload)[0].payload.toString(), 'r0\0');
    assert.equal(drbdRequestPayload().length, 8);
    assert.throws(() => decodeDrbdMessage({ ...msg(2, 0), payload: Buffer.alloc(4) }), /4 bytes is shorter than its 8-byte header/);
  });
});
