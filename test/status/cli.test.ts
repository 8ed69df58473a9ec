// drbd-bisync status / watch as an operator meets them on this host (no drbd
// module), and the human report on the lab's real recordings.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { statusLines } from '../../lib/cli/commands/status';
import { formatBytes } from '../../lib/cli/output';
import { decodeDrbdMessage, resourcesFromGetStatus } from '../../lib/status/drbd-genl';
import { GenlMessage } from '../../lib/status/genl';
import { parseProcDrbd, resourcesFromProc } from '../../lib/status/proc-drbd';
import { markSplitBrain } from '../../lib/status/status';
import { cli, cliJson } from '../helpers/cli';

const noModule = !fs.existsSync('/proc/drbd');
const LAB = path.join(__dirname, '../fixtures/status/lab');

function fromRecording(file: string) {
  const rec = JSON.parse(fs.readFileSync(path.join(LAB, file), 'utf8'));
  const msgs = rec.netlink.messages.GET_STATUS.map((m: { cmd: number; payload: string }) => decodeDrbdMessage({ cmd: m.cmd, payload: Buffer.from(m.payload, 'hex') } as GenlMessage));
  const resources = resourcesFromGetStatus(msgs);
  markSplitBrain(resources, rec.kernelLog);
  return { source: 'netlink' as const, api: 1, resources };
}

describe('CLI: status, watch', function () {
  this.timeout(60000);

  it('status --json without the drbd module: exit 2, one JSON error document with ENOENT, the hint on stderr', function () {
    if (!noModule) this.skip();
    const r = cliJson<{ error: { code: string; message: string } }>(['status']);
    assert.equal(r.status, 2);
    assert.equal(r.doc.error.code, 'ENOENT');
    assert.match(r.doc.error.message, /drbd kernel module is not loaded/);
    assert.match(r.stderr, /hint: load it with `modprobe drbd`/);
  });

  it('watch without the drbd module fails the same way instead of waiting', function () {
    if (!noModule) this.skip();
    const r = cliJson<{ error: { code: string } }>(['watch']);
    assert.equal(r.status, 2);
    assert.equal(r.doc.error.code, 'ENOENT');
  });

  it('bad options are refused with the value named', () => {
    const bad = cli(['watch', '--interval', '10']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--interval must be an integer of at least 50 \(ms\), got '10'/);
    const src = cli(['status', '--source', 'ioctl']);
    assert.equal(src.status, 2);
    assert.match(src.stderr, /ioctl/);
  });

  it('human report after a split brain (lab recording): says so and suggests plan with the backing device', () => {
    const lines = statusLines(fromRecording('split-brain-nodea.json'));
    assert.equal(lines[0], `r0 (minor 0): Secondary/Unknown StandAlone UpToDate/DUnknown, ${formatBytes(16 * 1024)} out of sync, SPLIT BRAIN`);
    assert.ok(lines.some((l) => /SPLIT BRAIN: DRBD detected a split brain and dropped the connection \(kernel log\)/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => l.includes('drbdadm down r0 on both nodes, then: drbd-bisync plan --device /dev/vda --peer PEER:PORT')), lines.join('\n'));
    assert.ok(lines.some((l) => /^  UUIDs: [0-9A-F]{16}:[0-9A-F]{16}:[0-9A-F]{16}:[0-9A-F]{16}$/.test(l)), lines.join('\n'));
    assert.equal(lines[lines.length - 1], 'source: netlink (api 1)');
  });

  it('human report of an administrative disconnect: StandAlone, no split-brain claim', () => {
    const lines = statusLines(fromRecording('disconnected-primary-nodea.json'));
    assert.ok(!lines.some((l) => /SPLIT BRAIN/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /StandAlone: not connected to the peer/.test(l)));
  });

  it('human report of a resync: progress and what is left', () => {
    const text = fs.readFileSync(path.join(__dirname, '../fixtures/status/proc-drbd/syncsource-primary.txt'), 'utf8');
    const lines = statusLines({ source: 'proc', version: '8.4.11', resources: resourcesFromProc(parseProcDrbd(text)) });
    assert.equal(lines[0], `minor-0 (minor 0): Primary/Secondary SyncSource UpToDate/Inconsistent, ${formatBytes(127960 * 1024)} out of sync, 3.2% synced`);
    assert.equal(lines[1], `  SyncSource: 3.2% done, ${formatBytes(127960 * 1024)} to go, about 0m39s left`);
    assert.equal(lines[2], 'source: /proc/drbd (8.4.11)');
  });
});
