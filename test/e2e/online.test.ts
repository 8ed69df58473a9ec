// End to end, the online merge on two real DRBD 8.4 nodes under qemu: nodea
// (the survivor) stays Primary with a process writing throughout; nodeb's
// split-brain writes are copied into nodea's live /dev/drbd0; nodeb is handed
// back to DRBD (attach, connect --discard-my-data) and DRBD's checksum-based
// resync brings it UpToDate, eliminating nodeb's own blocks by checksum.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import type { Lab } from '../../scripts/drbd-lab/lab';
import { DRBD_DEVICE, RESOURCE, configure, drbdadm, resetToSynced, splitBrain, waitSynced } from '../../scripts/drbd-lab/drbd';
import { CLI, MiB, Write, copyDisk, describeCli, expectWritesOnBoth, fileSha256, guestCli, readingDrbd, sharedLab, skipWithoutLab, writeAll } from './lab-helpers';
import { createVg, lvHashScript, lvPath, lvm, parseLvHashes, withVgActive } from '../../scripts/drbd-lab/lvm';

const CONF = '/run/lab/r0.conf';
const PSK = 'cd'.repeat(32);

describe('e2e: online merge on two DRBD 8.4 nodes (the survivor stays Primary)', function () {
  let lab: Lab | undefined;

  before(async function () {
    skipWithoutLab(this);
    lab = await sharedLab(); // the same two guests as the merge suite: one boot per run
    await configure(lab);
  });

  function scenario(title: string, body: (l: Lab) => Promise<void>): void {
    it(title, async function () {
      await resetToSynced(lab!, copyDisk);
      await body(lab!);
    });
  }

  /** nodea writes 4 KiB blocks of random data over 24-28 MiB until told to stop; returns stop(). */
  function writeThroughout(l: Lab): { count: () => number; stop: () => Promise<void> } {
    const count = l.a.hostPath('writer-count');
    const stopFile = l.a.hostPath('writer-stop');
    fs.rmSync(count, { force: true });
    fs.rmSync(stopFile, { force: true });
    const id = l.a.start(`i=0; while [ ! -f /run/lab/writer-stop ]; do dd if=/dev/urandom of=${DRBD_DEVICE} bs=4096 seek=$((6144 + i * 7 % 1024)) count=1 oflag=direct status=none || exit 1; i=$((i+1)); echo $i > /run/lab/writer-count; done`);
    const read = () => (fs.existsSync(count) ? Number(fs.readFileSync(count, 'utf8')) || 0 : 0);
    return {
      count: read,
      async stop() {
        fs.writeFileSync(stopFile, '');
        const r = await l.a.wait(id, 60_000);
        assert.equal(r.rc, 0, `nodea's writer failed: ${r.out}`);
      },
    };
  }

  const roleChanges = async (l: Lab): Promise<string[]> =>
    (await l.a.ok('dmesg | grep -E "role\\( Primary -> " || true')).split('\n').filter(Boolean);

  scenario('nodeb\'s writes copied into nodea\'s live device, nodeb handed back: UpToDate/UpToDate, oos:0, nodea never left Primary', async (l) => {
    const writes: Write[] = [
      { node: l.a, tag: 'on-a1', offset: 1 * MiB, length: 64 * 1024 },
      { node: l.a, tag: 'on-a2', offset: 20 * MiB + 8192, length: 4096 },
      { node: l.b, tag: 'on-b1', offset: 8 * MiB, length: 128 * 1024 },
      { node: l.b, tag: 'on-b2', offset: 40 * MiB + 4096, length: 8192 },
      { node: l.b, tag: 'on-b3', offset: 48 * MiB, length: 1 * MiB },
    ];
    const bBytes = writes.filter((w) => w.node === l.b).reduce((s, w) => s + w.length, 0);
    await splitBrain(l);
    const rolesBefore = await roleChanges(l);
    const writer = writeThroughout(l);
    await writeAll(writes);
    for (const g of l.nodes) fs.writeFileSync(g.hostPath('psk'), PSK, { mode: 0o600 });
    // The agent starts first, as the README says to: it waits while DRBD holds nodeb's disk, and serves once it is down.
    const serve = l.b.start(`exec node ${CLI} serve --resource ${RESOURCE} --drbd-config ${CONF} --listen ${l.b.ip}:7790 --psk-file /run/lab/psk --wait-down 600`);
    await l.b.waitOutput(serve, /waiting up to 600 s for \S+ to be released: .*attached to DRBD/, 300_000);
    await l.b.ok(drbdadm(`down ${RESOURCE}`));

    // Offline refusal first: without --no-lvm nothing is written and nodeb stays down, serving.
    await l.b.waitOutput(serve, /serving /);
    const diskB = fileSha256(l.b.disk);
    const base = ['merge', '--online', '--resource', RESOURCE, '--drbd-config', CONF, '--peer', `${l.b.ip}:7790`, '--psk-file', '/run/lab/psk',
      '--journal', '/run/lab/journal-online.json', '--yes', '--json'];
    const refused = await guestCli(l.a, base);
    assert.equal(refused.status, 1, describeCli(refused));
    assert.match(refused.json?.error?.message ?? '', /has no LVM, so nothing tells whether the \d+ bytes the peer changed/, describeCli(refused));
    assert.match(refused.stderr, /run again with --no-lvm/, describeCli(refused));
    assert.equal(fileSha256(l.b.disk), diskB, 'nodeb unchanged by the refusal');

    assert.ok(writer.count() > 0, 'nodea\'s writer is running');
    const m = await guestCli(l.a, [...base, '--no-lvm', '--wait-peer', '60']); // the agent listens already: no wait, the survivor checked again
    assert.equal(m.status, 0, describeCli(m));
    const served = await l.b.wait(serve, 300_000);
    assert.equal(served.rc, 0, `serve: ${served.out}`);
    assert.match(served.out, /--discard-my-data/, served.out);

    const r = m.json;
    assert.equal(r.outcome, 'merged', describeCli(m));
    assert.equal(r.movedToLocalBytes, bBytes, 'exactly nodeb\'s writes were copied into nodea');
    assert.equal(r.movedToPeerBytes, 0, 'nodea\'s changes are left to DRBD');
    assert.equal(r.finalized, null, 'no meta-data written online');
    const h = r.handback;
    assert.deepEqual(h.final, { connection: 'Connected', disk: 'UpToDate', peerDisk: 'UpToDate', outOfSyncBytes: 0 });
    assert.equal(h.survivorStayedPrimary, true, JSON.stringify(h.rolesSeen));
    assert.equal(h.csumsAlg, 'md5', 'the lab config has no csums-alg: both connects got md5');
    assert.ok(h.drbdResync, `DRBD's checksum summary in nodea's kernel log: ${JSON.stringify(h)}`);
    assert.ok(h.drbdResync.eliminatedBytes >= bBytes, `DRBD eliminated nodeb's ${bBytes} bytes by checksum: ${JSON.stringify(h.drbdResync)}`);
    assert.ok(h.peerWaitMs > 0);
    console.log(`      copied ${r.movedToLocalBytes} B; DRBD transferred ${h.drbdResync.transferredBytes} B, eliminated ${h.drbdResync.eliminatedBytes} B of ${h.drbdResync.totalBytes} B; nodeb waited ${(h.peerWaitMs / 1000).toFixed(1)} s; nodea's writer wrote ${writer.count()} blocks`);

    await writer.stop();
    await waitSynced(l);
    assert.deepEqual(await roleChanges(l), rolesBefore, 'nodea\'s kernel log shows no role change');
    await l.a.ok(drbdadm(`secondary ${RESOURCE}`));
    await expectWritesOnBoth(l, writes, true);
  });

  scenario('LVM on /dev/drbd0: nodeb changed an LV open on nodea: refused with nothing written (nodea\'s activity-log doubt settled per LV); --lv vmA=local keeps nodea\'s version online', async (l) => {
    const vg = 'vgon';
    const lvs = ['vmA', 'vmB'];
    await createVg(l, vg, { vmA: 8, vmB: 8 });
    await splitBrain(l);
    // nodea runs VM A: vmA active and held open throughout, as the VM's qemu would hold it.
    await l.a.ok(lvm(`vgchange -q -ay ${vg}`));
    const holdStop = l.a.hostPath('hold-stop');
    fs.rmSync(holdStop, { force: true });
    const hold = l.a.start(`exec 3<${lvPath(vg, 'vmA')}; while [ ! -f /run/lab/hold-stop ]; do sleep 0.2; done`);
    const writes: Write[] = [
      { node: l.a, tag: 'onl-a1', dev: lvPath(vg, 'vmA'), offset: 0, length: 64 * 1024 },
      { node: l.b, tag: 'onl-b1', dev: lvPath(vg, 'vmB'), offset: 1 * MiB, length: 128 * 1024 },
      { node: l.b, tag: 'onl-b2', dev: lvPath(vg, 'vmA'), offset: 2 * MiB, length: 4096 }, // VM A also ran on nodeb for a while
    ];
    await writeAll(writes.filter((w) => w.node === l.a));
    await writeAll(writes.filter((w) => w.node === l.b), (script) => withVgActive(vg, script));
    const onA = parseLvHashes(lvs, await l.a.ok(lvHashScript(vg, lvs)));
    const onB = parseLvHashes(lvs, await l.b.ok(withVgActive(vg, lvHashScript(vg, lvs))));
    assert.notEqual(onB.vmA, onA.vmA, 'both nodes wrote vmA');
    const expected = { vmA: onA.vmA, vmB: onB.vmB };
    await l.b.ok(drbdadm(`down ${RESOURCE}`));
    for (const g of l.nodes) fs.writeFileSync(g.hostPath('psk'), PSK, { mode: 0o600 });
    const serve = l.b.start(`exec node ${CLI} serve --resource ${RESOURCE} --drbd-config ${CONF} --listen ${l.b.ip}:7790 --psk-file /run/lab/psk`);
    await l.b.waitOutput(serve, /serving /);
    const base = ['merge', '--online', '--resource', RESOURCE, '--drbd-config', CONF, '--peer', `${l.b.ip}:7790`, '--psk-file', '/run/lab/psk',
      '--journal', '/run/lab/journal-online-lvm.json', '--yes', '--json'];

    const diskA = fileSha256(l.a.disk);
    const refused = await guestCli(l.a, base);
    assert.equal(refused.status, 1, describeCli(refused));
    // vmA is open here, so its blocks in nodea's activity log are nodea's: both nodes changed it. vmB is
    // not open and nodea's bitmap shows no write in it: its blocks in doubt are settled as nodeb's.
    const why = `${refused.json?.error?.message ?? refused.json?.message ?? ''} ${refused.json?.error?.hint ?? ''}`;
    assert.match(why, /\bvmA\b/, describeCli(refused));
    assert.doesNotMatch(why, /\bvmB\b/, describeCli(refused));
    assert.match(why, /--lv NAME=local/, describeCli(refused));
    assert.equal(fileSha256(l.a.disk), diskA, 'nodea\'s disk byte for byte unchanged by the refusal');

    const m = await guestCli(l.a, [...base, '--lv', 'vmA=local', '--archive', '/run/lab/archive-online-lvm']);
    assert.equal(m.status, 0, describeCli(m));
    const served = await l.b.wait(serve, 300_000);
    assert.equal(served.rc, 0, `serve: ${served.out}`);
    const h = m.json.handback;
    assert.deepEqual(h.final, { connection: 'Connected', disk: 'UpToDate', peerDisk: 'UpToDate', outOfSyncBytes: 0 });
    assert.equal(h.survivorStayedPrimary, true, JSON.stringify(h.rolesSeen));
    assert.equal(m.json.movedToLocalBytes, 128 * 1024, 'only vmB\'s changes were copied into nodea (vmA is nodea\'s)');
    // nodea, still Primary with vmA open, and then nodeb: vmA is nodea's version, vmB nodeb's.
    assert.deepEqual(parseLvHashes(lvs, await l.a.ok(lvHashScript(vg, lvs))), expected, 'LV contents on nodea after the hand-back');
    fs.writeFileSync(holdStop, '');
    assert.equal((await l.a.wait(hold, 60_000)).rc, 0);
    await l.a.ok(`${lvm(`vgchange -q -an ${vg}`)} && ${drbdadm(`secondary ${RESOURCE}`)}`);
    await waitSynced(l);
    assert.deepEqual(parseLvHashes(lvs, await readingDrbd(l.b, withVgActive(vg, lvHashScript(vg, lvs)))), expected, 'LV contents on nodeb');
  });
});
