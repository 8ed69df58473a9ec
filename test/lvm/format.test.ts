// The LVM reader on synthetic PVs (no root needed): CRC vectors, the text
// grammar and its traps, ring wrap-around, history, refusals. Real-tool
// checks are in real-lvm.test.ts.
import { strict as assert } from 'node:assert';

import { lvmCrc } from '../../lib/lvm/crc';
import { lvmLabelSector } from '../../lib/lvm/label';
import { compareMetadata, commonVersion, LvmReader, lvmSource, type ReadFn, readLvm, readLvmVersion } from '../../lib/lvm';
import { parseConfig } from '../../lib/lvm/text';
import { aliasFromRecord } from '../../lib/lvm/ovirt';
import { rejectsBadLvm } from '../helpers/lvm';
import { type ImageLv, lvmId, mdaHeader, pvImage, vgText, type VgTextOptions } from '../../scripts/lvm-image';

const MiB = 1 << 20;

export function vgOpts(over: Partial<VgTextOptions> = {}): VgTextOptions {
  return {
    vgName: 'vg0',
    vgUuid: lvmId(),
    pvUuid: lvmId(),
    seqno: 1,
    extentSize: 4 * MiB,
    peStart: MiB,
    peCount: 60,
    deviceSize: 256 * MiB,
    lvs: [],
    ...over,
  };
}

describe('lvm: CRC', () => {
  it('matches the LVM CRC test vectors', () => {
    const v = (s: string | Buffer): number => lvmCrc(typeof s === 'string' ? Buffer.from(s, 'latin1') : s);
    assert.equal(v(''), 0xf597a6cf);
    assert.equal(v('a'), 0x319b1949);
    assert.equal(v('LVM2'), 0x34ff1083);
    assert.equal(v('123456789'), 0x4991cf02);
    assert.equal(v(Buffer.alloc(512)), 0x6790aecb);
  });

  it('continues from a previous result like one pass over the concatenation', () => {
    const a = Buffer.from('hello ');
    const b = Buffer.from('world');
    assert.equal(lvmCrc(b, 0, b.length, lvmCrc(a)), lvmCrc(Buffer.concat([a, b])));
  });
});

describe('lvm: text format', () => {
  it('reads digit-leading names as names and numbers only after =, [ and ,', () => {
    const root = parseConfig('5e1f6c2a-9d3b {\nid = "x"\nseqno = 14\nstripes = [\n"pv0", 44\n]\n9f8e-0001 {\nn = -3\n}\n}\n');
    const vg = root.sections.get('5e1f6c2a-9d3b')!;
    assert.ok(vg, 'digit-leading section name');
    assert.equal(vg.values.get('seqno')!.value, 14);
    assert.deepEqual(vg.values.get('stripes')!.value, ['pv0', 44]);
    assert.equal(vg.sections.get('9f8e-0001')!.values.get('n')!.value, -3);
  });

  it('handles comments, escapes, single quotes, empty arrays and bare words', () => {
    const root = parseConfig('a = "x \\"y\\" \\\\ z" # comment "not a string"\nb = \'no \\escape\'\nc = []\nd = word\ne = 1.5\n');
    assert.equal(root.values.get('a')!.value, 'x "y" \\ z');
    assert.equal(root.values.get('b')!.value, 'no \\escape');
    assert.deepEqual(root.values.get('c')!.value, []);
    assert.equal(root.values.get('d')!.value, 'word');
    assert.equal(root.values.get('e')!.value, 1.5);
  });

  for (const [text, re] of [
    ['vg {\nid = "x"\n', /never closed/],
    ['a = "open', /closing quote/],
    ['a = [1, 2', /never closed|expected/],
    ['a = 12x', /not a number/],
    ['a = 99999999999999999999', /2\^53/],
    ['}', /never opened/],
    ['a b', /"=" or "\{"/],
    ['a = 1\na = 2', /twice/],
    ['a = [[1]]', /nests/],
  ] as Array<[string, RegExp]>) {
    it(`refuses ${JSON.stringify(text)} with ERR_BAD_LVM`, () => {
      assert.throws(() => parseConfig(text), (e: unknown) => e instanceof Error && (e as { code?: string }).code === 'ERR_BAD_LVM' && re.test(e.message));
    });
  }
});

describe('lvm: synthetic PVs', () => {
  it('returns null without a label and for a label-less device of zeros', async () => {
    const img = pvImage({ deviceSize: 64 * MiB, texts: [vgText(vgOpts())], pvUuid: lvmId() });
    img.regions.clear();
    assert.equal(await readLvm(img.read, img.size), null);
  });

  it('maps LV segments to bytes and the rest to unallocated', async () => {
    const o = vgOpts({ lvs: [{ name: '1lv', segments: [[0, 2], [10, 3]] }, { name: 'b', segments: [[2, 4]] }] });
    const img = pvImage({ deviceSize: o.deviceSize, texts: [vgText(o)], pvUuid: o.pvUuid });
    const v = (await readLvm(img.read, img.size))!;
    assert.equal(v.vg.lvs[0].name, '1lv');
    assert.deepEqual(v.vg.lvs[0].extents, [[MiB, 8 * MiB], [MiB + 40 * MiB, 12 * MiB]]);
    assert.deepEqual(v.vg.lvs[1].extents, [[MiB + 8 * MiB, 16 * MiB]]);
    assert.equal(v.vg.lvs[0].size, 20 * MiB);
    assert.deepEqual(v.unallocated, [[MiB + 24 * MiB, 16 * MiB], [MiB + 52 * MiB, 47 * 4 * MiB]]);
    assert.deepEqual(v.metadataRegion, [[0, MiB]]);
  });

  it('reads a committed copy that wraps around the ring end, and lists older copies newest first', async () => {
    const o = vgOpts();
    const texts: string[] = [];
    const lvs: ImageLv[] = [];
    const mdaSize = 64 * 1024;
    let img = pvImage({ deviceSize: o.deviceSize, texts: [vgText(o)], pvUuid: o.pvUuid, mdaSize });
    // Add copies to a ring too small for all of them until the committed one runs past the end.
    for (let s = 1; s <= 60; s++) {
      lvs.push({ name: `lv${s}`, segments: [[s - 1, 1]], tags: [`tag_${'x'.repeat(40)}_${s}`] });
      texts.push(vgText({ ...o, seqno: s, lvs: [...lvs] }));
      img = pvImage({ deviceSize: o.deviceSize, texts, pvUuid: o.pvUuid, mdaSize });
      const c = (await readLvm(img.read, img.size, { history: false }))!.committed;
      if (s > 30 && c.offset + c.size > mdaSize) break;
    }
    const v = (await readLvm(img.read, img.size))!;
    assert.ok(v.committed.offset + v.committed.size > mdaSize, 'the committed copy wraps');
    assert.equal(v.committed.seqno, texts.length);
    assert.equal(v.vg.lvs.length, texts.length);
    assert.ok(v.history.length > 0 && v.history.length < texts.length - 1, `some copies overwritten: ${v.history.length}`);
    assert.deepEqual(v.history.map((h) => h.seqno), [...v.history.map((h) => h.seqno)].sort((a, b) => b - a));
    for (const h of v.history) {
      const crc = lvmCrc(Buffer.concat([Buffer.from(texts[h.seqno - 1]), Buffer.alloc(1)]));
      assert.equal(h.checksum, crc, `seqno ${h.seqno} checksum`);
      assert.equal(h.description, `Write from test seqno ${h.seqno}.`);
    }
    const limited = (await readLvm(img.read, img.size, { historyLimit: 2 }))!;
    assert.deepEqual(limited.history, v.history.slice(0, 2));
    const old = v.history[v.history.length - 1];
    const vg = await readLvmVersion(img.read, img.size, old.seqno, old.checksum);
    assert.equal(vg.seqno, old.seqno);
    assert.equal(vg.lvs.length, old.seqno);
    await rejectsBadLvm(readLvmVersion(img.read, img.size, 1, 123), /seqno 1 checksum 0x7b.*no metadata area ring/);
  });

  it('reads each older copy once while scanning the ring; a reader reads the committed text once and an old version where the scan found it', async () => {
    const o = vgOpts();
    const texts = Array.from({ length: 6 }, (_, i) => vgText({ ...o, seqno: i + 1, lvs: Array.from({ length: i }, (_, k) => ({ name: `lv${k}`, segments: [[k, 1]] as Array<[number, number]> })) }));
    const img = pvImage({ deviceSize: o.deviceSize, texts, pvUuid: o.pvUuid });
    const counted = (): { read: ReadFn; reads: Array<[number, number]> } => {
      const reads: Array<[number, number]> = [];
      return { reads, read: (offset, length) => (reads.push([offset, length]), img.read(offset, length)) };
    };
    const once = counted();
    const full = (await readLvm(once.read, img.size))!;
    assert.equal(full.history.length, texts.length - 1);
    const mdaStart = full.pv.mdas[0].start;
    for (const h of full.history) {
      const [lo, hi] = [mdaStart + h.offset, mdaStart + h.offset + h.size];
      const covering = once.reads.filter(([off, len]) => off <= lo && off + len >= hi).length;
      assert.equal(covering, 1, `seqno ${h.seqno} read ${covering} times`);
    }

    const r = new LvmReader(counted().read, img.size);
    const twice = counted();
    const reader = new LvmReader(twice.read, img.size);
    const bare = (await reader.lvm({ history: false }))!;
    assert.deepEqual(bare.history, []);
    assert.deepEqual(await reader.lvm(), full);
    assert.deepEqual(twice.reads, once.reads, 'the committed view, then the history: the reads of one readLvm');
    const old = full.history[full.history.length - 1];
    twice.reads.length = 0;
    const vg = await reader.lvmVersion(old.seqno, old.checksum);
    assert.deepEqual(twice.reads, [[mdaStart + old.offset, old.size]], 'only the old copy is read');
    assert.deepEqual(vg, await readLvmVersion(img.read, img.size, old.seqno, old.checksum));
    assert.deepEqual(await r.lvmVersion(old.seqno, old.checksum), vg, 'without a scan before, found by scanning');
    await rejectsBadLvm(reader.lvmVersion(1, 123), /seqno 1 checksum 0x7b.*no metadata area ring/);
  });

  it('reads the label from sector 0 and 3 and refuses a sector_xl that lies', async () => {
    for (const labelSector of [0, 3]) {
      const o = vgOpts();
      const img = pvImage({ deviceSize: o.deviceSize, texts: [vgText(o)], pvUuid: o.pvUuid, labelSector });
      assert.equal((await readLvm(img.read, img.size))!.pv.labelSector, labelSector);
      assert.equal(lvmLabelSector(await img.read(0, 4096)), labelSector, 'the online gate finds the same sector');
    }
    const other = Buffer.alloc(2048);
    other.write('LABELONE', 512, 'latin1');
    other.write('LVM1 001', 512 + 24, 'latin1');
    assert.equal(lvmLabelSector(other), undefined, 'a LABELONE sector of another type is no LVM2 label');
    other.write('LABELONE', 1536, 'latin1');
    other.write('LVM2 001', 1536 + 24, 'latin1');
    assert.equal(lvmLabelSector(other), 3);
    assert.equal(lvmLabelSector(other.subarray(0, 1535)), undefined, 'only whole sectors count');
    const o = vgOpts();
    const img = pvImage({ deviceSize: o.deviceSize, texts: [vgText(o)], pvUuid: o.pvUuid, labelSector: 2 });
    const sector = img.regions.get(1024)!;
    img.write(512, sector);
    img.regions.delete(1024);
    await rejectsBadLvm(readLvm(img.read, img.size), /label_header.sector_xl at byte 520: 2 differs/);
  });

  it('refuses damaged checksums, naming the field, offset and value', async () => {
    const o = vgOpts({ lvs: [{ name: 'a', segments: [[0, 1]] }] });
    const fresh = (): ReturnType<typeof pvImage> => pvImage({ deviceSize: o.deviceSize, texts: [vgText(o)], pvUuid: o.pvUuid });
    let img = fresh();
    img.regions.get(512)![100] ^= 1;
    await rejectsBadLvm(readLvm(img.read, img.size), /label_header.crc_xl at byte 528: 0x[0-9a-f]+ does not match/);
    img = fresh();
    img.regions.get(4096)![300] ^= 1;
    await rejectsBadLvm(readLvm(img.read, img.size), /mda0_header.checksum_xl at byte 4096/);
    img = fresh();
    img.regions.get(4096 + 512)![10] ^= 1;
    await rejectsBadLvm(readLvm(img.read, img.size), /mda0_header.raw_locns\[0\].checksum at byte 4152: 0x[0-9a-f]+ does not match the CRC of the committed text/);
  });

  it('refuses truncated text whose CRC was made to match', async () => {
    const o = vgOpts({ lvs: [{ name: 'a', segments: [[0, 1]] }] });
    const text = vgText(o);
    const cut = Buffer.concat([Buffer.from(text.slice(0, text.indexOf('logical_volumes'))), Buffer.alloc(1)]);
    const img = pvImage({ deviceSize: o.deviceSize, texts: [text], pvUuid: o.pvUuid });
    img.write(4096 + 512, cut);
    img.write(4096, mdaHeader(4096, MiB - 4096, { offset: 512, size: cut.length, checksum: lvmCrc(cut) }));
    await rejectsBadLvm(readLvm(img.read, img.size), /mda0 committed text at text offset 0: "vg0" opens a section that is never closed/);
  });

  it('refuses a VG that misses a field, gives a PE twice or maps past pe_count', async () => {
    const cases: Array<[string, RegExp]> = [];
    const o = vgOpts({ lvs: [{ name: 'a', segments: [[0, 2]] }, { name: 'b', segments: [[1, 2]] }] });
    cases.push([vgText(o), /is a PE of pv0 that a uses too|that b uses too/]);
    const p = vgOpts({ lvs: [{ name: 'a', segments: [[59, 2]] }] });
    cases.push([vgText(p), /beyond pe_count 60/]);
    cases.push([vgText(vgOpts()).replace(/extent_size = \d+\n/, ''), /vg0.extent_size at text offset \d+: missing is required/]);
    cases.push([vgText(vgOpts({ lvs: [{ name: 'a', segments: [[0, 1]] }] })).replace('"striped"', '"frobnicate"'), /segment1.type .*"frobnicate" is a segment type this reader does not know/]);
    for (const [text, re] of cases) {
      const pvUuid = /pv0 \{\nid = "([^"]+)"/.exec(text)![1];
      const img = pvImage({ deviceSize: 256 * MiB, texts: [text], pvUuid });
      await rejectsBadLvm(readLvm(img.read, img.size), re);
    }
  });

  it('falls back to the second metadata area when the first is damaged, refuses when both are', async () => {
    const o = vgOpts({ lvs: [{ name: 'a', segments: [[0, 1]] }] });
    const img = pvImage({ deviceSize: o.deviceSize, texts: [vgText(o)], pvUuid: o.pvUuid, mda2Size: MiB });
    img.regions.get(4096)![300] ^= 1;
    const v = (await readLvm(img.read, img.size))!;
    assert.equal(v.committed.mda, 1);
    assert.deepEqual(v.metadataRegion, [[0, MiB], [o.deviceSize - MiB, MiB]]);
    img.regions.get(o.deviceSize - MiB)![300] ^= 1;
    await rejectsBadLvm(readLvm(img.read, img.size), /mda0_header.checksum_xl/);
  });

  it('finds the common version and what each node changed since', async () => {
    const base = vgOpts({ lvs: [{ name: 'v1', uuid: lvmId(), segments: [[0, 4]] }, { name: 'v2', uuid: lvmId(), segments: [[4, 4]] }] });
    const t1 = vgText(base);
    const aLvs: ImageLv[] = [...base.lvs.slice(0, 1), { ...base.lvs[1], segments: [[4, 4], [12, 2]] }, { name: 'va', uuid: lvmId(), segments: [[8, 4]], tags: ['t'] }];
    const bLvs: ImageLv[] = [{ ...base.lvs[0], name: 'v1renamed', tags: ['x'] }, { name: 'vb', uuid: lvmId(), segments: [[4, 8]] }];
    const a = pvImage({ deviceSize: base.deviceSize, pvUuid: base.pvUuid, texts: [t1, vgText({ ...base, seqno: 2, lvs: aLvs })] });
    const b = pvImage({ deviceSize: base.deviceSize, pvUuid: base.pvUuid, texts: [t1, vgText({ ...base, seqno: 2, lvs: bLvs })] });
    const va = (await readLvm(a.read, a.size))!;
    const vb = (await readLvm(b.read, b.size))!;
    const common = commonVersion(va, vb)!;
    assert.equal(common.seqno, 1);
    const anc = await lvmSource(a.read, a.size).lvmVersion(common.seqno, common.checksum);
    const cmp = compareMetadata(va, vb, anc);
    assert.deepEqual(compareMetadata(va, vb, anc, common), cmp, 'the common version passed in decides as the one computed');
    assert.equal(cmp.changedOn, 'both');
    assert.deepEqual(cmp.changes.local.map((c) => `${c.kind} ${c.lv}`), ['resized v2', 'created va']);
    assert.deepEqual(cmp.changes.peer.map((c) => `${c.kind} ${c.lv}`), ['renamed v1renamed', 'retagged v1renamed', 'removed v2', 'created vb']);
    assert.deepEqual(cmp.extentConflicts, [[4, 4, 'v2', 'vb'], [8, 4, 'va', 'vb'], [12, 2, 'v2', null]]);
    // One side only: the other is the common version.
    const c2 = compareMetadata(va, (await readLvm(pvImage({ deviceSize: base.deviceSize, pvUuid: base.pvUuid, texts: [t1] }).read, base.deviceSize))!, anc);
    assert.equal(c2.changedOn, 'local');
    assert.deepEqual(c2.extentConflicts, []);
    assert.equal(compareMetadata(va, va, null).changedOn, 'none');
  });
});

describe('lvm: oVirt volumes', () => {
  it('reads a V4 domain alias from slot * 512 of the metadata LV and ignores a VG without the domain tag', async () => {
    const vol = { name: '9f8e7d6c-0000-4000-8000-00000000b001', segments: [[3, 1]] as Array<[number, number]>, tags: ['IU_img-1', 'PU_00000000-0000-0000-0000-000000000000', 'MD_7'] };
    const lvs: ImageLv[] = [{ name: 'metadata', segments: [[1, 2]] }, { name: 'ids', segments: [[0, 1]] }, vol];
    const o = vgOpts({ tags: ['RHAT_storage_domain', 'MDT_VERSION=4'], lvs });
    const img = pvImage({ deviceSize: o.deviceSize, texts: [vgText(o)], pvUuid: o.pvUuid });
    // The metadata LV starts at PE 1; slot 7 of a V4 domain at 7 * 512 inside it.
    img.write(MiB + 4 * MiB + 7 * 512, Buffer.from('DESCRIPTION={"DiskAlias":"db01_Disk2","DiskDescription":"x"}\nIMAGE=img-1\nEOF\n'));
    const v = (await readLvm(img.read, img.size))!;
    const byName = new Map(v.vg.lvs.map((l) => [l.name, l.ovirt]));
    assert.deepEqual(byName.get(vol.name), { role: 'volume', image: 'img-1', parent: '00000000-0000-0000-0000-000000000000', mdSlot: 7, alias: 'db01_Disk2' });
    assert.equal(byName.get('ids')!.role, 'ids');
    const plain = vgOpts({ lvs });
    const img2 = pvImage({ deviceSize: plain.deviceSize, texts: [vgText(plain)], pvUuid: plain.pvUuid });
    const v2 = (await readLvm(img2.read, img2.size))!;
    assert.equal(v2.vg.ovirt, false);
    assert.ok(v2.vg.lvs.every((l) => l.ovirt === null));
  });

  it('leaves the alias null for records without EOF, another image, or a DESCRIPTION that is not JSON', () => {
    assert.equal(aliasFromRecord(Buffer.from('DESCRIPTION={"DiskAlias":"a"}\nIMAGE=i\n'), 'i'), null);
    assert.equal(aliasFromRecord(Buffer.from('DESCRIPTION={"DiskAlias":"a"}\nIMAGE=other\nEOF\n'), 'i'), null);
    assert.equal(aliasFromRecord(Buffer.from('DESCRIPTION=plain words\nIMAGE=i\nEOF\n'), 'i'), null);
    assert.equal(aliasFromRecord(Buffer.from('DESCRIPTION={"DiskAlias":"a b"}\nIMAGE=i\nEOF\n'), 'i'), 'a b');
  });
});
