// Split brain from the kernel log: the lab's real DRBD 8.4 messages.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readKernelLog, splitBrainInLog } from '../../lib/status/kernel-log';
import { markSplitBrain } from '../../lib/status/status';
import { parseProcDrbd, resourcesFromProc } from '../../lib/status/proc-drbd';
import { isRoot } from '../helpers/env';

const lines = (f: string): string[] =>
  fs.readFileSync(path.join(__dirname, '../fixtures/status/kernel-log', f), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));

describe('status: split brain from the kernel log', () => {
  it('both lab nodes: "Split-Brain detected" after the reconnect means split brain, by minor or by name', () => {
    for (const f of ['lab-8.4-split-brain-nodea.txt', 'lab-8.4-split-brain-nodeb.txt']) {
      assert.equal(splitBrainInLog(lines(f), 'r0', [0]), true, f);
      assert.equal(splitBrainInLog(lines(f), 'other', [3]), false, `${f}: another resource`);
    }
  });

  it('a resync without split brain is not one', () => {
    assert.equal(splitBrainInLog(lines('lab-8.4-resync-nodea.txt'), 'r0', [0]), false);
  });

  it('a reconnect after the split brain clears it (the operator resolved it, or is trying)', () => {
    const log = [...lines('lab-8.4-split-brain-nodea.txt'), 'drbd r0: conn( StandAlone -> Unconnected ) '];
    assert.equal(splitBrainInLog(log, 'r0', [0]), false);
  });

  it('marks only StandAlone resources (the lab /proc/drbd after the split brain)', () => {
    const read = (f: string): string => fs.readFileSync(path.join(__dirname, '../fixtures/status/proc-drbd', f), 'utf8');
    const sb = resourcesFromProc(parseProcDrbd(read('standalone-split-brain.txt')), new Map([[0, ['r0', 0]]]));
    markSplitBrain(sb, lines('lab-8.4-split-brain-nodea.txt'));
    assert.deepEqual([sb[0].splitBrain, sb[0].splitBrainEvidence], [true, 'kernel-log']);
    const conn = resourcesFromProc(parseProcDrbd(read('connected-primary-uptodate.txt')), new Map([[0, ['r0', 0]]]));
    markSplitBrain(conn, lines('lab-8.4-split-brain-nodea.txt'));
    assert.equal(conn[0].splitBrain, false);
  });

  it('reads /dev/kmsg to the end without blocking', function () {
    if (!isRoot) {
      this.test!.title += ' (pending: needs root)';
      this.skip();
    }
    const log = readKernelLog();
    assert.ok(Array.isArray(log), '/dev/kmsg is readable as root');
    assert.equal(readKernelLog('/nonexistent/kmsg'), undefined);
  });
});
