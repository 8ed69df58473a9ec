// Journal.load checks every field of a journal read back from disk: a damaged
// or foreign journal stops the merge with the field and the value named.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Journal, JournalState } from '../../lib/resync/journal';
import { tmpDir } from '../helpers/env';

const VALID: JournalState = {
  version: 1,
  device: '/dev/vg0/r0',
  peer: '10.0.0.2:7790',
  startedAt: '2026-12-01T10:00:00.000Z',
  localCurrent: '1234567890ABCDEE',
  peerCurrent: 'FEDCBA0987654320',
  commonBitmap: 'C0FFEE0000000000',
  changes: { local: 'a'.repeat(32), peer: 'b'.repeat(32) },
  policy: 'none',
  archive: null,
  phase: 'finalize',
  doneBelow: { toPeer: 4096, toLocal: 0, conflicts: 0, forcedToPeer: 0, forcedToLocal: 8192 },
  lvm: { lvWinners: { 'aBcDeF-0000-0000-0000-0000-0000-000000': 'peer' }, vgMetadataWinner: null, dropLvs: [], lvm: true },
  final: { current: 'ABCDEF0123456788', localHistory: ['C0FFEE0000000000', '1111111111111110'], peerHistory: ['C0FFEE0000000000', '2222222222222220'] },
};

describe('Journal.load', () => {
  let dir = '';
  beforeEach(() => {
    dir = tmpDir('bisync-journal-');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const load = (state: unknown): Journal | undefined => {
    const file = path.join(dir, 'j.json');
    fs.writeFileSync(file, JSON.stringify(state));
    return Journal.load(file);
  };
  /** VALID with one field (a dotted path) replaced, or removed when value is undefined. */
  const withField = (field: string, value: unknown): unknown => {
    const s = JSON.parse(JSON.stringify(VALID));
    const keys = field.split('.');
    const last = keys.pop()!;
    const parent = keys.reduce((o, k) => o[k], s);
    if (value === undefined) delete parent[last];
    else parent[last] = value;
    return s;
  };

  it('reads back a valid journal unchanged', () => {
    assert.deepEqual(load(VALID)!.state, VALID);
    const { changes: _c, final: _f, ...older } = { ...VALID, phase: 'transfer' as const };
    assert.deepEqual(load(older)!.state, older, 'changes and final are optional in the transfer phase');
  });

  it('reads a journal of the version before LVM resolutions: its forced lanes count as not started', () => {
    const older = JSON.parse(JSON.stringify(VALID));
    delete older.doneBelow.forcedToPeer;
    delete older.doneBelow.forcedToLocal;
    delete older.lvm;
    const j = load(older)!;
    assert.deepEqual(j.state.doneBelow, { toPeer: 4096, toLocal: 0, conflicts: 0, forcedToPeer: 0, forcedToLocal: 0 });
  });

  it('is undefined when there is no journal', () => {
    assert.equal(Journal.load(path.join(dir, 'none.json')), undefined);
  });

  const BAD: Array<[string, unknown, RegExp]> = [
    ['version', 2, /version is 2, expected 1/],
    ['device', '', /device is "", expected a non-empty string/],
    ['peer', 7, /peer is 7, expected a non-empty string/],
    ['startedAt', 'yesterday', /startedAt is "yesterday", expected an ISO date/],
    ['localCurrent', '1234', /localCurrent is "1234", expected a UUID/],
    ['peerCurrent', undefined, /peerCurrent is undefined, expected a UUID/],
    ['commonBitmap', 'c0ffee0000000000', /commonBitmap is "c0ffee0000000000", expected a UUID of 16 uppercase hex digits/],
    ['policy', 'prefer-both', /policy is "prefer-both", expected 'none', 'prefer-local' or 'prefer-peer'/],
    ['archive', 5, /archive is 5, expected null or a folder path/],
    ['phase', 'verify', /phase is "verify", expected 'transfer' or 'finalize'/],
    ['doneBelow', [], /doneBelow is \[\], expected an object/],
    ['doneBelow.toPeer', -1, /doneBelow.toPeer is -1, expected an integer offset/],
    ['doneBelow.toLocal', 1.5, /doneBelow.toLocal is 1.5, expected an integer offset/],
    ['doneBelow.conflicts', '0', /doneBelow.conflicts is "0", expected an integer offset/],
    ['doneBelow.toPeer', 2 ** 53, /doneBelow.toPeer is 9007199254740992, expected an integer offset/],
    ['doneBelow.forcedToLocal', -4096, /doneBelow.forcedToLocal is -4096, expected an integer offset/],
    ['lvm', 'yes', /lvm is "yes", expected an object/],
    ['lvm.lvWinners', [], /lvm.lvWinners is \[\], expected an object/],
    ['lvm.vgMetadataWinner', 'both', /lvm.vgMetadataWinner is "both", expected null, "local" or "peer"/],
    ['lvm.dropLvs', [''], /lvm.dropLvs is \[""\], expected an array of LV uuids/],
    ['lvm.lvm', 1, /lvm.lvm is 1, expected true or false/],
    ['changes.local', 'xyz', /changes.local is "xyz", expected a digest/],
    ['final.current', 'not-a-uuid', /final.current is "not-a-uuid", expected a UUID/],
    ['final.localHistory', [], /final.localHistory is \[\], expected a non-empty array of UUIDs/],
    ['final.peerHistory', ['C0FFEE0000000000', 'nope'], /final.peerHistory\[1\] is "nope", expected a UUID/],
    ['final', undefined, /final is undefined, expected the finalize phase's chosen UUIDs/],
  ];
  for (const [field, value, message] of BAD) {
    it(`refuses ${field} = ${JSON.stringify(value) ?? 'missing'}, naming the field and the value`, () => {
      assert.throws(() => load(withField(field, value)), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'ERR_BAD_METADATA');
        assert.match(e.message, /merge journal '.*j\.json': /);
        assert.match(e.message, message);
        return true;
      });
    });
  }

  it('refuses a document that is not an object, and text that is not JSON', () => {
    assert.throws(() => load([VALID]), /the document is \[.*\], expected an object/);
    fs.writeFileSync(path.join(dir, 'torn.json'), '{"version": 1, "dev');
    assert.throws(() => Journal.load(path.join(dir, 'torn.json')), /is not valid JSON/);
  });
});
