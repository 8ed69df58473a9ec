// The reader against real lvm2 on loop devices: what `pvs --segments`, `vgs`
// and `pvs` report is the reference for every extent, seqno and uuid.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';

import { BlockDevice } from '../../lib/device/block-device';
import { compareMetadata, commonVersion, type LvmView, readLvm, readLvmFromDevice, readLvmVersion } from '../../lib/lvm';
import { lvmCrc } from '../../lib/lvm/crc';
import { lvmId, mdaHeader } from '../../scripts/lvm-image';
import { LvmLab, lvmReport, type PvSegment, rejectsBadLvm, requiresLvm, runLvm } from '../helpers/lvm';

const MiB = 1 << 20;
const GiB = 1 << 30;

/** LV uuid → PE runs, and the free runs, as LVM reports them for one PV. */
function lvmMap(segs: PvSegment[]): { lvs: Map<string, Array<[number, number]>>; free: Array<[number, number]> } {
  const lvs = new Map<string, Array<[number, number]>>();
  const free: Array<[number, number]> = [];
  for (const s of segs) {
    const runs = s.lvUuid === '' ? free : lvs.get(s.lvUuid) ?? lvs.set(s.lvUuid, []).get(s.lvUuid)!;
    const last = runs[runs.length - 1];
    if (last && last[0] + last[1] === s.start) last[1] += s.size;
    else runs.push([s.start, s.size]);
  }
  return { lvs, free };
}

/** The same map from the reader's view (bytes back to PEs). */
function viewMap(v: LvmView): { lvs: Map<string, Array<[number, number]>>; free: Array<[number, number]> } {
  const pe = ([off, len]: readonly [number, number]): [number, number] => [(off - v.vg.peStart!) / v.vg.extentSize, len / v.vg.extentSize];
  const lvs = new Map<string, Array<[number, number]>>();
  for (const lv of v.vg.lvs) if (lv.extents.length) lvs.set(lv.uuid, lv.extents.map(pe));
  return { lvs, free: v.unallocated.map(pe) };
}

/** Asserts the reader's view of `device` equals what LVM reports for it. */
function assertMatchesLvm(lab: LvmLab, v: LvmView, device = lab.device): void {
  const vg = lab.vgInfo();
  assert.equal(v.vg.seqno, vg.seqno, 'seqno as vgs says');
  assert.equal(v.vg.uuid, vg.uuid, 'VG uuid as vgs says');
  assert.equal(v.vg.extentSize, vg.extentSize);
  const [pv] = lvmReport(lab.devices, 'pvs', 'pv_uuid,pe_start', [device]);
  assert.equal(v.pv.uuid, pv.pv_uuid);
  assert.equal(v.vg.peStart, Number(pv.pe_start));
  const want = lvmMap(lab.pvSegments(device));
  const got = viewMap(v);
  assert.deepEqual([...got.lvs.entries()].sort(), [...want.lvs.entries()].sort(), 'PE runs per LV as pvs --segments says');
  assert.deepEqual(got.free, want.free, 'free PEs as pvs --segments says');
}

async function view(device: string): Promise<LvmView> {
  const v = await readLvmFromDevice(device);
  assert.ok(v, `an LVM view of ${device}`);
  return v;
}

/** Writes through the loop device itself, so later buffered reads of it see the bytes. */
function writeDevice(device: string, offset: number, data: Buffer): void {
  const fd = fs.openSync(device, 'r+');
  try {
    fs.writeSync(fd, data, 0, data.length, offset);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function readDevice(device: string, offset: number, length: number): Buffer {
  const fd = fs.openSync(device, 'r');
  try {
    const b = Buffer.alloc(length);
    fs.readSync(fd, b, 0, length, offset);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

describe('lvm: reader against real lvm2 on loop devices', function () {
  let lab: LvmLab | null = null;
  beforeEach(function () {
    requiresLvm(this);
  });
  afterEach(() => {
    lab?.close();
    lab = null;
  });

  it('default layout: extents, free space, seqno, history checksums and older versions', async function () {
    lab = new LvmLab([128 * MiB]);
    lab.pvcreate(lab.device);
    lab.vgcreate(['-s', '4m']);
    const seen = new Map<number, { checksum: number; lvs: string[] }>();
    const record = async (): Promise<void> => {
      const v = (await readLvmFromDevice(lab!.device, { history: false }))!;
      seen.set(v.committed.seqno, { checksum: v.committed.checksum, lvs: v.vg.lvs.map((l) => l.name).sort() });
    };
    await record();
    for (const step of [
      () => lab!.lvcreate('a', '8m'),
      () => lab!.lvcreate('9b', '12m', '--addtag', 'IU_x'),
      () => lab!.lvcreate('c', '4m'),
      () => lab!.run('lvextend', '-L', '+8m', `${lab!.vg}/a`),
      () => lab!.run('lvremove', '-y', `${lab!.vg}/c`),
      () => lab!.run('lvrename', lab!.vg, '9b', '9b-renamed'),
      () => lab!.lvcreate('d', '4m'),
    ]) {
      step();
      await record();
    }
    const v = await view(lab.device);
    assertMatchesLvm(lab, v);
    assert.equal(v.pv.labelSector, 1);
    assert.equal(v.pv.mdas.length, 1);
    assert.deepEqual(v.metadataRegion, [[0, v.pv.peStart]]);
    assert.deepEqual(v.vg.lvs.find((l) => l.name === 'a')!.segmentTypes, ['linear', 'linear']);
    // Each older copy's computed checksum is the one raw_locn held while it was committed.
    assert.deepEqual(v.history.map((h) => h.seqno), [...seen.keys()].filter((s) => s < v.committed.seqno).sort((x, y) => y - x));
    for (const h of v.history) {
      assert.equal(h.checksum, seen.get(h.seqno)!.checksum, `seqno ${h.seqno}`);
      assert.match(h.description!, /^Write from /);
    }
    for (const h of v.history.slice(0, 4)) {
      const old = await readLvmVersion(async (o, n) => readDevice(lab!.device, o, n), v.pv.deviceSize, h.seqno, h.checksum);
      assert.deepEqual(old.lvs.map((l) => l.name).sort(), seen.get(h.seqno)!.lvs);
    }
  });

  it("oVirt's layout: two 128 MiB metadata areas, 128 MiB extents, special LVs, volume tags and the disk alias", async function () {
    const sd = `5${randomBytes(3).toString('hex')}a-0000-4000-8000-${randomBytes(6).toString('hex')}`;
    lab = new LvmLab([20 * GiB], { vg: sd });
    lab.pvcreate(lab.device, '--metadatasize', '128m', '--metadatacopies', '2');
    lab.vgcreate(['-s', '128m', '--addtag', 'RHAT_storage_domain', '--addtag', 'MDT_VERSION=5']);
    for (const [name, size] of [['metadata', '128m'], ['ids', '8m'], ['inbox', '16m'], ['outbox', '16m'], ['leases', '2g'], ['xleases', '1g'], ['master', '1g']]) {
      lab.lvcreate(name, size);
    }
    const img = '7a1b2c3d-0000-4000-8000-00000000a001';
    const vol1 = '9f8e7d6c-0000-4000-8000-00000000b001';
    const vol2 = '9f8e7d6c-0000-4000-8000-00000000b002';
    const vol3 = '0a8e7d6c-0000-4000-8000-00000000b003';
    lab.lvcreate(vol1, '1g', '--addtag', `IU_${img}`, '--addtag', 'PU_00000000-0000-0000-0000-000000000000', '--addtag', 'MD_1');
    lab.lvcreate(vol2, '1g', '--addtag', `IU_${img}`, '--addtag', `PU_${vol1}`, '--addtag', 'MD_2');
    lab.lvcreate(vol3, '1g', '--addtag', 'IU__remove_me_ZERO_bbbb', '--addtag', 'PU_00000000-0000-0000-0000-000000000000', '--addtag', 'MD_3');
    // Volume records in the metadata LV (domain V5: 1 MiB + slot * 8 KiB): slot 1 names the disk,
    // slot 3 belongs to another image (a stale slot), slot 2 was never written.
    const peStart = lab.peStart();
    const record = (image: string, alias: string): Buffer => Buffer.from(`CAP=1073741824\nDESCRIPTION={"DiskAlias":"${alias}","DiskDescription":""}\nDOMAIN=${sd}\nIMAGE=${image}\nVOLTYPE=LEAF\nEOF\n`);
    writeDevice(lab.device, peStart + MiB + 1 * 8192, record(img, 'web01_Disk1'));
    writeDevice(lab.device, peStart + MiB + 3 * 8192, record('cccc', 'other'));

    const v = await view(lab.device);
    assertMatchesLvm(lab, v);
    assert.equal(v.vg.name, sd);
    assert.ok(v.vg.ovirt);
    assert.equal(v.pv.mdas.length, 2);
    assert.equal(v.vg.extentSize, 128 * MiB);
    assert.deepEqual(v.metadataRegion, [[0, peStart], [20 * GiB - 128 * MiB, 128 * MiB]]);
    const byName = new Map(v.vg.lvs.map((l) => [l.name, l]));
    const firstPe = (name: string): number => (byName.get(name)!.extents[0][0] - peStart) / (128 * MiB);
    assert.deepEqual(['metadata', 'ids', 'inbox', 'outbox', 'leases', 'xleases', 'master'].map(firstPe), [0, 1, 2, 3, 4, 20, 28]);
    for (const role of ['metadata', 'ids', 'inbox', 'outbox', 'leases', 'xleases', 'master']) assert.equal(byName.get(role)!.ovirt!.role, role);
    assert.deepEqual(byName.get(vol1)!.ovirt, { role: 'volume', image: img, parent: '00000000-0000-0000-0000-000000000000', mdSlot: 1, alias: 'web01_Disk1' });
    assert.deepEqual(byName.get(vol2)!.ovirt, { role: 'volume', image: img, parent: vol1, mdSlot: 2, alias: null });
    assert.deepEqual(byName.get(vol3)!.ovirt, { role: 'volume', image: 'bbbb', parent: '00000000-0000-0000-0000-000000000000', mdSlot: 3, alias: null });
    assert.equal(v.history.length, v.committed.seqno - 1);
  });

  it('a ring that has wrapped: the committed copy split across the ring end, history still checked', async function () {
    lab = new LvmLab([64 * MiB]);
    lab.pvcreate(lab.device, '--dataalignment', '64k', '--metadatasize', '32k');
    lab.vgcreate(['-s', '1m']);
    for (let i = 0; i < 6; i++) lab.lvcreate(`lv${i}`, '1m');
    const checksums = new Map<number, number>();
    let wrapped: LvmView | null = null;
    for (let i = 0; i < 200 && !wrapped; i++) {
      lab.run('lvchange', '--addtag', `tag_${i}_${'x'.repeat(30)}`, `${lab.vg}/lv${i % 6}`);
      const v = (await readLvmFromDevice(lab.device, { history: false }))!;
      checksums.set(v.committed.seqno, v.committed.checksum);
      const mda = v.pv.mdas[v.committed.mda];
      if (v.committed.offset + v.committed.size > mda.size) wrapped = v;
    }
    assert.ok(wrapped, 'the committed copy ran past the ring end');
    const v = await view(lab.device);
    assertMatchesLvm(lab, v);
    assert.ok(v.history.length > 0);
    for (const h of v.history) if (checksums.has(h.seqno)) assert.equal(h.checksum, checksums.get(h.seqno), `seqno ${h.seqno}`);
  });

  for (const labelSector of [0, 3]) {
    it(`a label in sector ${labelSector}`, async function () {
      lab = new LvmLab([64 * MiB]);
      lab.pvcreate(lab.device, '--labelsector', String(labelSector));
      lab.vgcreate(['-s', '4m']);
      lab.lvcreate('a', '8m');
      const v = await view(lab.device);
      assert.equal(v.pv.labelSector, labelSector);
      assertMatchesLvm(lab, v);
    });
  }

  it('4 KiB logical sectors', async function () {
    lab = new LvmLab([128 * MiB], { sectorSize: 4096 });
    const dev = await BlockDevice.open(lab.device, { direct: false });
    assert.equal(dev.logicalSectorSize, 4096);
    await dev.close();
    lab.pvcreate(lab.device);
    lab.vgcreate(['-s', '4m']);
    lab.lvcreate('a', '8m');
    lab.lvcreate('b', '16m');
    lab.run('lvextend', '-L', '+4m', `${lab.vg}/a`);
    assertMatchesLvm(lab, await view(lab.device));
  });

  it("striped LVs over two PVs: each PV's share only", async function () {
    lab = new LvmLab([128 * MiB, 128 * MiB]);
    for (const d of lab.devices) lab.pvcreate(d);
    lab.vgcreate(['-s', '4m']);
    lab.lvcreate('lin', '8m', lab.devices[1]);
    lab.lvcreate('str', '40m', '-i', '2', '-I', '64k');
    lab.lvcreate('span', '100m', lab.devices[0]);
    lab.run('lvextend', '-L', '+20m', `${lab.vg}/span`, lab.devices[1]);
    for (const d of lab.devices) {
      const v = await view(d);
      assertMatchesLvm(lab, v, d);
      assert.deepEqual(v.vg.lvs.find((l) => l.name === 'str')!.segmentTypes, ['striped']);
      assert.equal(v.vg.lvs.find((l) => l.name === 'str')!.extents.reduce((s, e) => s + e[1], 0), 20 * MiB, 'half of the striped LV on each PV');
    }
  });

  it('LV-to-LV areas (raid1, mirror, snapshot COW, thin pool) are credited to the LV they serve, as lvs -a says', async function () {
    lab = new LvmLab([128 * MiB, 128 * MiB]);
    for (const d of lab.devices) lab.pvcreate(d);
    lab.vgcreate(['-s', '4m']);
    lab.lvcreate('orig', '16m', lab.devices[0]);
    // LVM cannot create these without device-mapper, but vgcfgrestore writes them and validates them.
    const file = `${lab.loops[0].file}.vg`;
    lab.run('vgcfgbackup', '-f', file, lab.vg);
    const text = fs.readFileSync(file, 'utf8');
    const at = text.lastIndexOf('\t}\n\n}');
    fs.writeFileSync(file, text.slice(0, at) + stackedLvs() + text.slice(at));
    lab.run('vgcfgrestore', '--force', '-f', file, lab.vg);
    fs.rmSync(file);
    const rows = lab.lvs('lv_name,lv_uuid,lv_parent,origin,pool_lv', '-a');
    const byName = new Map(rows.map((r) => [r.lv_name.replace(/^\[(.*)\]$/, '$1'), r]));
    const top = (name: string): string => {
      const r = byName.get(name)!;
      if (r.lv_parent) return top(r.lv_parent);
      if (r.origin && !r.pool_lv) return top(r.origin);
      return r.lv_uuid;
    };
    for (const d of lab.devices) {
      const v = await view(d);
      const want = new Map<string, Array<[number, number]>>();
      for (const s of lab.pvSegments(d)) {
        if (!s.lvName) continue;
        const runs = want.get(top(s.lvName)) ?? want.set(top(s.lvName), []).get(top(s.lvName))!;
        const last = runs[runs.length - 1];
        if (last && last[0] + last[1] === s.start) last[1] += s.size;
        else runs.push([s.start, s.size]);
      }
      assert.deepEqual([...viewMap(v).lvs.entries()].sort(), [...want.entries()].sort(), `owners on ${d}`);
      assert.deepEqual(v.vg.lvs.map((l) => l.name).sort(), ['lvol0_pmspare', 'm', 'orig', 'r1', 'th', 'tp']);
      assert.deepEqual(v.vg.lvs.find((l) => l.name === 'th')!.extents, []);
      assert.deepEqual(v.vg.lvs.find((l) => l.name === 'r1')!.segmentTypes, ['raid']);
    }
  });

  it('damaged checksums and truncated text on a real PV are refused with the field named', async function () {
    lab = new LvmLab([64 * MiB]);
    lab.pvcreate(lab.device);
    lab.vgcreate(['-s', '4m']);
    lab.lvcreate('a', '8m');
    const v = await view(lab.device);
    const mdaStart = v.pv.mdas[0].start;
    const textAt = mdaStart + v.committed.offset;
    const flip = (at: number): void => {
      const b = readDevice(lab!.device, at, 1);
      b[0] ^= 0x20;
      writeDevice(lab!.device, at, b);
    };
    flip(textAt + 5);
    await rejectsBadLvm(readLvmFromDevice(lab.device), new RegExp(`raw_locns\\[0\\].checksum at byte ${mdaStart + 56}: 0x${v.committed.checksum.toString(16)} does not match`));
    flip(textAt + 5);
    assert.ok(await readLvmFromDevice(lab.device), 'restored');
    flip(512 + 100);
    await rejectsBadLvm(readLvmFromDevice(lab.device), /label_header.crc_xl at byte 528/);
    flip(512 + 100);
    // LVM itself agrees the restored PV is fine.
    runLvm(lab.devices, 'vgck', [lab.vg]);
    // Truncated text whose checksum was made to match: the text itself is refused.
    const header = readDevice(lab.device, mdaStart, 512);
    const text = readDevice(lab.device, textAt, v.committed.size);
    const cut = Buffer.concat([text.subarray(0, text.indexOf('logical_volumes')), Buffer.alloc(1)]);
    writeDevice(lab.device, textAt, cut);
    writeDevice(lab.device, mdaStart, mdaHeader(mdaStart, v.pv.mdas[0].size, { offset: v.committed.offset, size: cut.length, checksum: lvmCrc(cut) }));
    await rejectsBadLvm(readLvmFromDevice(lab.device), new RegExp(`mda0 committed text at text offset 0: "${lab.vg}" opens a section that is never closed`));
    writeDevice(lab.device, mdaStart, header);
    writeDevice(lab.device, textAt, text);
    assert.ok(await readLvmFromDevice(lab.device), 'restored');
    flip(mdaStart + 200);
    await rejectsBadLvm(readLvmFromDevice(lab.device), new RegExp(`mda0_header.checksum_xl at byte ${mdaStart}`));
  });

  it('two nodes diverged from a common version: common seqno, changes per node, extent conflicts as LVM allocated them', async function () {
    lab = new LvmLab([256 * MiB]);
    lab.pvcreate(lab.device);
    lab.vgcreate(['-s', '4m']);
    lab.lvcreate('v1', '16m');
    lab.lvcreate('v2', '32m');
    const base = lab.vgInfo().seqno;
    // Node B starts as a byte copy of node A; each node's LVM sees only its own device.
    const copy = `${lab.loops[0].file}.b`;
    execFileSync('cp', ['--sparse=always', lab.loops[0].file, copy]);
    const b = execFileSync('losetup', ['--find', '--show', copy], { encoding: 'utf8' }).trim();
    const a = lab.device;
    try {
      const onA = (cmd: string, ...args: string[]): string => runLvm([a], cmd, args);
      const onB = (cmd: string, ...args: string[]): string => runLvm([b], cmd, args);
      onA('lvcreate', '-an', '-Zn', '-y', '-n', 'va', '-L', '16m', lab.vg);
      onA('lvchange', '--addtag', 'ta', `${lab.vg}/va`);
      onA('lvextend', '-L', '+16m', `${lab.vg}/v2`);
      onB('lvremove', '-y', `${lab.vg}/v2`);
      onB('lvcreate', '-an', '-Zn', '-y', '-n', 'vb', '-L', '48m', lab.vg);
      onB('lvchange', '--addtag', 'tb', `${lab.vg}/vb`);
      const va = await view(a);
      const vb = await view(b);
      assert.equal(va.committed.seqno, vb.committed.seqno, 'both nodes made three changes');
      assert.notEqual(va.committed.checksum, vb.committed.checksum);
      const common = commonVersion(va, vb)!;
      assert.equal(common.seqno, base);
      const anc = await readLvmVersion(async (o, n) => readDevice(b, o, n), vb.pv.deviceSize, common.seqno, common.checksum);
      const cmp = compareMetadata(va, vb, anc);
      assert.equal(cmp.changedOn, 'both');
      assert.deepEqual(cmp.changes.local.map((c) => `${c.kind} ${c.lv}`), ['resized v2', 'created va']);
      assert.deepEqual(cmp.changes.peer.map((c) => `${c.kind} ${c.lv}`), ['removed v2', 'created vb']);
      // Expected conflicts from LVM's own reports of both devices.
      const owner = (segs: PvSegment[], pe: number): string | null => segs.find((s) => s.start <= pe && pe < s.start + s.size && s.lvName !== '')?.lvName ?? null;
      const segA = lab.pvSegments(a);
      const segB = lvmReport([b], 'pvs', 'pv_name,pvseg_start,pvseg_size,lv_name,lv_uuid', ['--segments', b]).map((r) => ({ pv: r.pv_name, start: Number(r.pvseg_start), size: Number(r.pvseg_size), lvName: r.lv_name, lvUuid: r.lv_uuid }));
      const expected: Array<[number, number, string | null, string | null]> = [];
      for (let pe = 0; pe < va.vg.peCount; pe++) {
        const [l, p] = [owner(segA, pe), owner(segB, pe)];
        if (l === p) continue;
        const last = expected[expected.length - 1];
        if (last && last[2] === l && last[3] === p && last[0] + last[1] === pe) last[1]++;
        else expected.push([pe, 1, l, p]);
      }
      assert.ok(expected.length > 0);
      assert.deepEqual(cmp.extentConflicts, expected);
      // Only node A moved past the common version: a one-sided change.
      const stale = await readLvmVersion(async (o, n) => readDevice(a, o, n), va.pv.deviceSize, common.seqno, common.checksum);
      assert.equal(stale.seqno, base);
    } finally {
      execFileSync('losetup', ['-d', b]);
      fs.rmSync(copy, { force: true });
    }
  });

  it('a PV without a VG (orphan) and a device without a label read as null', async function () {
    lab = new LvmLab([64 * MiB, 64 * MiB]);
    lab.pvcreate(lab.devices[0]);
    assert.equal(await readLvmFromDevice(lab.devices[0]), null);
    assert.equal(await readLvmFromDevice(lab.devices[1]), null);
    const dev = await BlockDevice.open(lab.devices[1], { direct: false });
    assert.equal(await readLvm((o, n) => dev.read(o, n), dev.size), null);
    await dev.close();
  });
});


/** LV sections for a raid1, a mirror, a snapshot of `orig` and a thin pool with one thin LV, as LVM 2.03 writes them. */
function stackedLvs(): string {
  const id = (): string => lvmId();
  const hidden = '["READ", "WRITE"]';
  const visible = '["READ", "WRITE", "VISIBLE"]';
  const head = (name: string, status: string, segs: number): string[] => [`${name} {`, `id = "${id()}"`, `status = ${status}`, 'flags = []', 'creation_time = 1', 'creation_host = "vm"', `segment_count = ${segs}`];
  const linear = (name: string, status: string, pv: string, pe: number, n: number): string =>
    [...head(name, status, 1), 'segment1 {', 'start_extent = 0', `extent_count = ${n}`, 'type = "striped"', 'stripe_count = 1', 'stripes = [', `"${pv}", ${pe}`, ']', '}', '}'].join('\n');
  const seg = (n: number, ...body: string[]): string[] => ['segment1 {', 'start_extent = 0', `extent_count = ${n}`, ...body, '}', '}'];
  return [
    linear('snap', visible, 'pv0', 4, 2),
    [...head('snapshot0', '["READ"]', 1), ...seg(4, 'type = "snapshot"', 'chunk_size = 8', 'origin = "orig"', 'cow_store = "snap"')].join('\n'),
    [...head('r1', visible, 1), ...seg(4, 'type = "raid1"', 'device_count = 2', 'region_size = 1024', 'raids = [', '"r1_rmeta_0", "r1_rimage_0",', '"r1_rmeta_1", "r1_rimage_1"', ']')].join('\n'),
    linear('r1_rmeta_0', hidden, 'pv0', 6, 1),
    linear('r1_rimage_0', hidden, 'pv0', 7, 4),
    linear('r1_rmeta_1', hidden, 'pv1', 0, 1),
    linear('r1_rimage_1', hidden, 'pv1', 1, 4),
    [...head('tp', visible, 1), ...seg(4, 'type = "thin-pool"', 'metadata = "tp_tmeta"', 'pool = "tp_tdata"', 'transaction_id = 1', 'chunk_size = 128', 'discards = "passdown"', 'zero_new_blocks = 1')].join('\n'),
    linear('tp_tdata', hidden, 'pv0', 11, 4),
    linear('tp_tmeta', hidden, 'pv1', 5, 1),
    linear('lvol0_pmspare', hidden, 'pv1', 6, 1),
    [...head('th', visible, 1), ...seg(25, 'type = "thin"', 'thin_pool = "tp"', 'transaction_id = 0', 'device_id = 1')].join('\n'),
    [...head('m', visible, 1), ...seg(2, 'type = "mirror"', 'mirror_count = 2', 'mirror_log = "m_mlog"', 'region_size = 1024', 'mirrors = [', '"m_mimage_0", 0,', '"m_mimage_1", 0', ']')].join('\n'),
    linear('m_mimage_0', hidden, 'pv0', 15, 2),
    linear('m_mimage_1', hidden, 'pv1', 7, 2),
    linear('m_mlog', hidden, 'pv1', 9, 1),
  ].join('\n') + '\n';
}
