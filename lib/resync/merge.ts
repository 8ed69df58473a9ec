// The bidirectional merge: each side's changed blocks go to the other,
// conflicts are refused or resolved by policy (the loser's bytes archived
// first), both sides are verified, and DRBD's meta-data is finalised so the
// resource reconnects UpToDate/UpToDate with nothing left to resync.
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { resolve as resolvePath } from 'node:path';
import { BisyncError, ErrorCode } from '../device/errors';
import { Extent, batches, end, intersect, normalize, subtract, totalBytes, union } from '../device/extent';
import { formatUuid } from '../drbd';
import type { MetadataReport } from '../drbd/types';
import type { LvmDoc, LvmResolutions } from '../plan/lvm';
import { Plan, hashBothSides, plan as makePlan, planDocument } from '../plan/plan';
import type { Endpoint } from '../transport/endpoint';
import { transferExtents } from '../transport/transfer';
import { Archive, ArchiveSource, MergeIdentity } from './archive';
import { failpoint } from './failpoint';
import { Journal, JournalLvm, JournalState, NO_PROGRESS, TransferLane } from './journal';

export type ConflictPolicy = 'prefer-local' | 'prefer-peer';
export type VerifyMode = 'changed' | 'full' | 'none';

export interface MergeOptions extends LvmResolutions {
  /** Where the journal lives (required for writing merges; dry runs need none). */
  journal?: string;
  /** How to resolve conflicts; without one, conflicts refuse the merge and nothing changes. */
  onConflict?: ConflictPolicy;
  /** Archive folder for the blocks a policy or an LVM resolution overwrites (required with onConflict, and when a resolution overwrites anything). */
  archive?: string;
  verify?: VerifyMode;
  dryRun?: boolean;
  /** Bytes per transfer request (default 8 MiB). */
  batchBytes?: number;
  /** Requests in flight per direction (default 4). */
  concurrency?: number;
  /** A label for the peer in the journal ("host:port" or a path). */
  peerLabel?: string;
  /** How often a transfer lane records its progress in the journal (default 500 ms; 0: after every batch). */
  journalIntervalMs?: number;
  signal?: AbortSignal;
  /**
   * Online: the local node is the survivor, its resource up (Primary) and the local endpoint
   * live (its DRBD device). Only the peer's changes are copied here; DRBD's own resync carries
   * this node's changes to the peer after the hand-back, so nothing goes to the peer and no
   * meta-data is written. prefer-local only archives the peer's side of the conflicts.
   */
  online?: boolean;
  /**
   * Called with the plan and every extent the merge would write on this node, before anything
   * is written (also in a dry run), and online once more after the copy, before verification
   * and hand-back; throwing refuses the merge. The online mode's safety gate.
   */
  beforeLocalWrites?: (p: Plan, extents: Extent[], afterCopy: boolean) => Promise<void> | void;
  /** Online: this node's device-mapper open counts, to settle the live survivor's blocks in doubt per LV (see plan()). */
  openCounts?: () => Promise<Map<string, number>>;
}

export interface MergeProgress {
  phase: 'plan' | TransferLane | 'verify' | 'finalize';
  doneBytes: number;
  totalBytes: number;
}

export type MergeOutcome = 'merged' | 'nothing-to-do' | 'left-to-drbd' | 'conflicts' | 'refused' | 'dry-run';

export interface MergeReport {
  outcome: MergeOutcome;
  message: string;
  plan: Record<string, unknown>;
  movedToPeerBytes: number;
  movedToLocalBytes: number;
  conflictResolution: { policy: ConflictPolicy | 'none'; bytes: number; archivedBytes: number } ;
  /** Blocks both nodes wrote that an LVM resolution (LV winner, VG metadata winner, dropped LV, ids sector merge, mailbox) overwrote, archived first. */
  lvmResolution: { toPeerBytes: number; toLocalBytes: number; archivedBytes: number };
  /** The plan's LVM view with its resolutions (the `lvm` key), null without an LVM2 PV. */
  lvm: LvmDoc | null;
  archive: string | null;
  verification: { mode: VerifyMode; checkedBytes: number; ok: boolean } | null;
  finalized: { currentUuid: string } | null;
  resumed: boolean;
}

/** Emits 'progress' (MergeProgress) and 'log' (string) while it runs. */
export class Merge extends EventEmitter {
  /** Per lane, how many of this run's batches the journal's progress covers (for the resume failpoint). */
  private readonly journaledBatches: Record<TransferLane, number> = { toPeer: 0, toLocal: 0, conflicts: 0, forcedToPeer: 0, forcedToLocal: 0 };
  /** Written into every archive entry, so restore-archive can tell merges apart. */
  private identity?: MergeIdentity;
  /** Batches this run checked as they landed (read back from the destination): verify() skips them. */
  private readonly verifiedInline: Extent[] = [];

  constructor(private readonly local: Endpoint, private readonly peer: Endpoint, private readonly opts: MergeOptions = {}) {
    super();
    if (opts.onConflict && !opts.archive) {
      throw new BisyncError(ErrorCode.REFUSED, `--on-conflict ${opts.onConflict} needs --archive DIR: overwritten blocks are saved there first`);
    }
    if (!opts.dryRun && !opts.journal) throw new BisyncError(ErrorCode.REFUSED, 'a merge that writes needs a journal path');
  }

  async run(): Promise<MergeReport> {
    const journal = this.opts.journal && !this.opts.dryRun ? Journal.load(this.opts.journal) : undefined;
    if (journal?.state.phase === 'finalize') return this.finalizeFromJournal(journal);

    // The data streams' handshakes overlap the plan instead of following it.
    if (!this.opts.dryRun) this.peer.prepareTransfer?.();
    const p = await makePlan(this.local, this.peer, {
      lvWinners: this.opts.lvWinners,
      vgMetadataWinner: this.opts.vgMetadataWinner,
      dropLvs: this.opts.dropLvs,
      lvm: this.opts.lvm,
      openCounts: this.opts.openCounts,
      signal: this.opts.signal,
      onProgress: (_phase, done, total) => this.emit('progress', { phase: 'plan', doneBytes: done, totalBytes: total }),
    });
    checkDisjointLanes(p);
    if (journal) {
      this.checkSameMerge(journal, p);
      this.restartIfWritten(journal, p);
    }
    const early = this.earlyOutcome(p, true);
    if (early) return early;
    await this.opts.beforeLocalWrites?.(p, this.localWrites(p), false);
    const dry = this.earlyOutcome(p, false);
    if (dry) return dry;

    const policy = this.opts.onConflict ?? 'none';
    const j = journal ?? Journal.create(this.opts.journal!, this.newJournalState(p, policy));
    const record = this.lvmRecord();
    if (!j.state.lvm || (isEmptyLvm(j.state.lvm) && !isEmptyLvm(record))) {
      j.state.lvm = record;
      j.save();
    }
    const report = this.emptyReport(p, 'merged', '');
    report.resumed = journal !== undefined;
    if (j.state.policy !== policy) {
      // Only 'none' gets here (checkSameMerge): new writes brought conflicts. Record the policy before it acts.
      j.state.policy = policy;
      j.state.archive = this.opts.archive ?? null;
      j.save();
    } else if (j.state.archive && this.opts.archive && resolvePath(j.state.archive) !== resolvePath(this.opts.archive)) {
      // A batch cut short is archived again on the rerun, from blocks that already hold the
      // winner's bytes: restore keeps the earliest entry of a block, which works in one folder only.
      throw new BisyncError(ErrorCode.REFUSED, `this merge archives into ${j.state.archive} (its journal says so), not ${this.opts.archive}: nothing was written in this run`,
        { hint: `run it again with --archive ${j.state.archive}` });
    }
    // Opened (and created) before any write: a folder that cannot be used stops the merge while nothing has changed.
    const archived = p.conflicts.length || p.forcedToPeer.length || p.forcedToLocal.length;
    const archive = archived ? Archive.open(this.opts.archive!) : undefined;
    try {
      return await this.transferAll(p, j, report, policy, archive);
    } finally {
      archive?.close();
    }
  }

  /** The transfer lanes, verification and finalize of run(); `archive` is open when any lane archives. */
  private async transferAll(p: Plan, j: Journal, report: MergeReport, policy: ConflictPolicy | 'none', archive: Archive | undefined): Promise<MergeReport> {
    // Both directions at once: the link and both disks are full duplex. A
    // failing lane stops the other, so nothing runs on after run() rejects.
    const stop = new AbortController();
    const signal = this.opts.signal ? AbortSignal.any([this.opts.signal, stop.signal]) : stop.signal;
    const lane = (work: Promise<number>): Promise<number> => work.catch((e: unknown) => {
      stop.abort(e);
      throw e;
    });
    const online = !!this.opts.online;
    const lanes = await Promise.allSettled([
      online ? Promise.resolve(0) : lane(this.transfer('toPeer', p.toPeer, this.local, this.peer, j, signal)),
      lane(this.transfer('toLocal', p.toLocal, this.peer, this.local, j, signal)),
    ]);
    // One lane's failure breaks the streams the other shares, and which lane notices first
    // is a race: report the cause (a failed verification, a refused batch), not the broken pipe it left.
    const failed = lanes.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    if (failed.length) throw this.onlineHint(failed.find((e) => !isLinkLoss(e)) ?? failed[0]);
    [report.movedToPeerBytes, report.movedToLocalBytes] = lanes.map((r) => (r as PromiseFulfilledResult<number>).value);
    if (archive) {
      this.identity = mergeIdentity(j.state, p);
      // What an LVM resolution decided first: it never overlaps the per-block conflicts.
      const r = report.lvmResolution;
      r.toPeerBytes = p.forcedToPeerBytes;
      r.toLocalBytes = p.forcedToLocalBytes;
      // Online, this node's winners reach the peer through DRBD: only the peer's side is archived.
      r.archivedBytes += online ? await this.archiveOnly(p, p.forcedToPeer, archive)
        : await this.transfer('forcedToPeer', p.forcedToPeer, this.local, this.peer, j, this.opts.signal, { archive, source: this.loser(p, 'peer') });
      r.archivedBytes += await this.transfer('forcedToLocal', p.forcedToLocal, this.peer, this.local, j, this.opts.signal, { archive, source: this.loser(p, 'local') });
      if (p.conflicts.length) {
        const winnerIsLocal = policy === 'prefer-local';
        report.conflictResolution.archivedBytes = online && winnerIsLocal ? await this.archiveOnly(p, p.conflicts, archive)
          : await this.transfer('conflicts', p.conflicts,
            winnerIsLocal ? this.local : this.peer, winnerIsLocal ? this.peer : this.local, j, this.opts.signal, { archive, source: this.loser(p, winnerIsLocal ? 'peer' : 'local') });
        report.conflictResolution.bytes = totalBytes(p.conflicts);
      }
    }
    await Promise.all([this.local.flush(), this.peer.flush()]);
    j.save();
    // Online, what the gate allowed before the copy must still hold after it: an LV opened on this
    // node meanwhile (a VM started) holds the hand-back back. Whatever it says now is no refusal:
    // the blocks are written (exit 1 would say nothing changed).
    if (online) await Promise.resolve(this.opts.beforeLocalWrites?.(p, this.localWrites(p), true)).catch((e: unknown) => {
      throw e instanceof BisyncError && e.code === ErrorCode.VERIFY ? e
        : new BisyncError(ErrorCode.VERIFY, `online merge stopped before the hand-back: ${(e as Error).message}`, { hint: (e as BisyncError).hint ?? 'run the merge again; it resumes from its journal', cause: e });
    });

    report.verification = await this.verify(p);
    if (!report.verification.ok) {
      // Every lane says "done": without a reset the rerun would skip the transfer and fail again.
      j.state.doneBelow = { ...NO_PROGRESS };
      j.save();
      throw new BisyncError(ErrorCode.VERIFY, 'verification failed: the two sides still differ after the transfer; meta-data left untouched', {
        hint: online ? ONLINE_VERIFY_HINT : 'run the merge again; it resumes from its journal',
      });
    }
    if (online) {
      j.remove();
      report.message = `copied ${report.movedToLocalBytes} bytes of the peer's changes into this node's live DRBD device` +
        (p.conflicts.length ? `, ${report.conflictResolution.bytes} conflicting bytes resolved (${policy})` : '') +
        '; this node\'s own changes reach the peer through DRBD\'s resync after the hand-back';
      return report;
    }
    report.finalized = await this.finalize(j, p);
    j.remove();
    const forced = p.forcedToPeerBytes + p.forcedToLocalBytes;
    report.message = `merged: ${report.movedToPeerBytes} bytes to the peer, ${report.movedToLocalBytes} bytes to this node` +
      (forced ? `, ${forced} bytes both nodes wrote taken from the winner an LVM resolution chose` : '') +
      (p.conflicts.length ? `, ${report.conflictResolution.bytes} conflicting bytes resolved (${policy})` : '');
    return report;
  }

  /**
   * Online, a batch that read back other bytes than were written means something on this node
   * writes the peer's blocks: running again as is would overwrite it again.
   */
  private onlineHint(e: unknown): unknown {
    if (!this.opts.online || !(e instanceof BisyncError) || e.code !== ErrorCode.VERIFY) return e;
    return new BisyncError(ErrorCode.VERIFY, e.message, { hint: ONLINE_VERIFY_HINT, cause: e });
  }

  /** What the merge writes on this node: the peer's changes, and conflicts the peer wins. */
  private localWrites(p: Plan): Extent[] {
    const mine = [...union(p.toLocal, p.forcedToLocal)];
    return this.opts.onConflict === 'prefer-peer' ? [...union(mine, p.conflicts)] : mine;
  }

  /**
   * Online prefer-local: the peer's side of each conflict goes to the archive; DRBD's resync
   * overwrites it later. Saved with the merge's identity, as transfer() saves, so that
   * restore-archive sees one merge and not a folder mixing entries with and without identity.
   */
  private async archiveOnly(p: Plan, conflicts: Extent[], archive: Archive): Promise<number> {
    const source = this.loser(p, 'peer');
    let n = 0;
    for (const batch of batches(conflicts, this.opts.batchBytes ?? 8 << 20)) {
      archive.save(source, batch, await this.peer.read(batch));
      n += totalBytes(batch);
      this.emit('progress', { phase: 'conflicts', doneBytes: n, totalBytes: totalBytes(conflicts) });
    }
    return n;
  }

  /**
   * How archive entries name the side whose bytes are overwritten: host and device as the
   * plan read them. Not info(): that re-reads the superblock, which only the finalize guard needs.
   */
  private loser(p: Plan, side: 'local' | 'peer'): ArchiveSource {
    const s = side === 'local' ? p.local : p.peer;
    return { side, host: s.host, device: s.path, merge: this.identity };
  }

  /** Verdicts and situations that end before anything is written (beforeGate: the ones that need no safety check). */
  private earlyOutcome(p: Plan, beforeGate: boolean): MergeReport | undefined {
    if (!beforeGate) return this.dryRunOutcome(p);
    switch (p.verdict) {
      case 'in-sync':
        return this.emptyReport(p, 'nothing-to-do', 'the nodes are in sync: nothing to do');
      case 'local-ahead':
      case 'peer-ahead': {
        const [from, to, bytes] = p.verdict === 'local-ahead' ? ['this node', 'the peer', p.toPeerBytes] : ['the peer', 'this node', p.toLocalBytes];
        return this.emptyReport(p, 'left-to-drbd',
          `only ${from} wrote (${p.reason}); DRBD resyncs ${bytes} bytes from ${from} to ${to} by itself on connect: nothing for drbd-bisync to do`);
      }
      case 'history-split-brain':
      case 'unrelated':
        return this.emptyReport(p, 'refused', `refused: ${p.reason}`);
      default:
        break;
    }
    if (p.blockers.length) {
      return this.emptyReport(p, 'conflicts', `refused, nothing changed: ${p.blockers.join('; ')}`);
    }
    const forced = p.forcedToPeerBytes + p.forcedToLocalBytes;
    if (forced && !this.opts.archive && !this.opts.dryRun) {
      return this.emptyReport(p, 'refused',
        `refused, nothing changed: the LVM resolutions overwrite ${forced} bytes that the other node also wrote; give --archive DIR so they are saved first`);
    }
    if (p.conflicts.length && !this.opts.onConflict) {
      return this.emptyReport(p, 'conflicts',
        `${p.conflictBytes} bytes in ${p.conflicts.length} range(s) were written on both nodes with different contents; nothing changed (choose --on-conflict prefer-local|prefer-peer with --archive DIR to resolve)`);
    }
    return undefined;
  }

  private dryRunOutcome(p: Plan): MergeReport | undefined {
    if (!this.opts.dryRun) return undefined;
    const toPeer = this.opts.online ? 'leave DRBD to resync' : 'move';
    const forced = p.forcedToPeerBytes + p.forcedToLocalBytes;
    return this.emptyReport(p, 'dry-run', `dry run: would ${toPeer} ${p.toPeerBytes} bytes to the peer and move ${p.toLocalBytes} bytes to this node` +
      (forced ? `, overwrite ${p.forcedToPeerBytes} bytes on the peer and ${p.forcedToLocalBytes} bytes here as the LVM resolutions decide (archived first)` : '') +
      (p.conflicts.length ? ` and resolve ${p.conflictBytes} conflicting bytes (${this.opts.onConflict})` : ''));
  }

  /**
   * Moves extents from src to dst in pipelined batches, in ascending order, so
   * the journal can say "everything below offset X is done". With an archive,
   * dst's bytes are saved durably (as `save.source`) before they are overwritten.
   */
  private async transfer(lane: TransferLane, extents: Extent[], src: Endpoint, dst: Endpoint, j: Journal, signal?: AbortSignal, save?: { archive: Archive; source: ArchiveSource }): Promise<number> {
    const todo = clipBelow(extents, j.state.doneBelow[lane] ?? 0);
    const total = totalBytes(todo);
    const saveLoser = async (batch: Extent[]): Promise<void> => {
      save!.archive.save(save!.source, batch, await dst.read(batch));
      failpoint('after-archive');
    };
    let moved = 0;
    let batchesDone = 0;
    // Written is not yet durable: the journal calls a prefix done only after
    // dst was flushed, so a power cut cannot lose what a resume would skip.
    let durable: Promise<void> = Promise.resolve();
    let saved = Date.now();
    this.emit('progress', { phase: lane, doneBytes: 0, totalBytes: total });
    await transferExtents(src, dst, todo, {
      batchBytes: this.opts.batchBytes,
      concurrency: this.opts.concurrency,
      signal,
      beforeWrite: save ? saveLoser : undefined,
      // Each batch is read back as it lands. Offline both devices are held exclusively, so it stays
      // as checked; online the safety gate runs again after the copy (see run()) to make sure nothing
      // on this node took up the blocks meanwhile, and `--verify full` reads them all again at the end.
      verify: (this.opts.verify ?? 'changed') === 'changed',
      // Batches arrive in ascending order, so everything below this one's end is written.
      onBatch: (batch, n, verified) => {
        if (verified) this.verifiedInline.push(...batch);
        moved += n;
        batchesDone++;
        if (Date.now() - saved >= (this.opts.journalIntervalMs ?? JOURNAL_INTERVAL_MS)) {
          saved = Date.now();
          const below = end(batch[batch.length - 1]);
          const covered = batchesDone;
          durable = durable.then(() => dst.flush()).then(() => {
            j.progress(lane, below);
            this.journaledBatches[lane] = covered;
            failpoint('after-journaled-batches', this.journaledBatches.toPeer + this.journaledBatches.toLocal + this.journaledBatches.conflicts);
          });
          durable.catch(() => undefined); // awaited below; a failed lane leaves it unawaited
        }
        if (moved >= total / 2) failpoint('mid-transfer');
        this.emit('progress', { phase: lane, doneBytes: moved, totalBytes: total });
      },
    });
    await durable;
    await dst.flush();
    j.progress(lane, Number.MAX_SAFE_INTEGER);
    return moved;
  }

  /**
   * Compares digests of every moved and conflicting range (or the whole device) on both sides,
   * except the batches checked as they landed (a resumed run checks what it skipped here).
   */
  private async verify(p: Plan): Promise<{ mode: VerifyMode; checkedBytes: number; ok: boolean }> {
    const mode = this.opts.verify ?? 'changed';
    if (mode === 'none') return { mode, checkedBytes: 0, ok: true };
    // Online, this node's own blocks keep changing and only reach the peer later, through DRBD: check what was copied here
    // (`full`: all of it again, also what was read back as it landed).
    const all: Extent[] = this.opts.online ? this.localWrites(p)
      // One sort of the lists end to end (runs already sorted) rather than nested unions: a scattered
      // split brain has tens of thousands of extents, and this runs once, before the JIT has warmed up.
      : mode === 'full' ? [[0, p.dataSize]] : normalize([...p.toPeer, ...p.toLocal, ...p.conflicts, ...p.forcedToPeer, ...p.forcedToLocal]);
    const ranges = this.opts.online && mode === 'full' ? all : [...subtract(all, normalize(this.verifiedInline))];
    const total = totalBytes(all);
    let checked = total - totalBytes(ranges);
    this.emit('progress', { phase: 'verify', doneBytes: checked, totalBytes: total });
    let ok = true;
    for await (const { batch, local: a, peer: b } of hashBothSides(this.local, this.peer, ranges, p.blockSize, { signal: this.opts.signal })) {
      if (!a.digests.equals(b.digests)) ok = false;
      checked += totalBytes(batch);
      this.emit('progress', { phase: 'verify', doneBytes: checked, totalBytes: total });
    }
    return { mode, checkedBytes: checked, ok };
  }

  /**
   * Gives both nodes the same new current UUID, no bitmap UUID, the common
   * ancestor rotated into history, a cleared bitmap, a clean activity log and
   * consistent/up-to-date flags: DRBD's rule "current UUIDs equal" then means
   * no resync. The chosen UUID is journalled first, so a crash between the
   * two writes is finished by the next run.
   */
  private async finalize(j: Journal, p: Plan): Promise<{ currentUuid: string }> {
    // info() re-reads each superblock from its device (through the agent for a remote peer).
    const [li, pi] = await Promise.all([this.local.info(), this.peer.info()]);
    for (const [side, i, planned] of [['local', li, p.local], ['peer', pi, p.peer]] as const) {
      const now = i.metadata?.uuids;
      for (const [what, was, is] of [['current', planned.currentUuid, now?.current], ['bitmap', planned.bitmapUuid, now?.bitmap]] as const) {
        if (is !== was) {
          throw new BisyncError(ErrorCode.REFUSED,
            `${side} meta-data of '${i.path}' changed during the merge (${what} UUID ${was}, now ${is ?? 'none'}); meta-data left untouched`);
        }
      }
    }
    j.state.phase = 'finalize';
    j.state.final = {
      current: newCurrentUuid(),
      localHistory: rotatedHistory(li.metadata!),
      peerHistory: rotatedHistory(pi.metadata!),
    };
    j.save();
    failpoint('before-finalize');
    await this.writeFinal(j);
    return { currentUuid: j.state.final.current };
  }

  private async writeFinal(j: Journal): Promise<void> {
    const f = j.state.final!;
    this.emit('progress', { phase: 'finalize', doneBytes: 0, totalBytes: 2 });
    await this.peer.writeMetadata(finalUpdate(f.current, f.peerHistory));
    failpoint('between-finalize-writes');
    this.emit('progress', { phase: 'finalize', doneBytes: 1, totalBytes: 2 });
    await this.local.writeMetadata(finalUpdate(f.current, f.localHistory));
    this.emit('progress', { phase: 'finalize', doneBytes: 2, totalBytes: 2 });
  }

  /** A run that finds the journal in its finalize phase only completes the meta-data writes. */
  private async finalizeFromJournal(j: Journal): Promise<MergeReport> {
    const [li, pi] = await Promise.all([this.local.info(), this.peer.info()]);
    const f = j.state.final!;
    for (const [side, i, started] of [['local', li, j.state.localCurrent], ['peer', pi, j.state.peerCurrent]] as const) {
      const now = i.metadata?.uuids.current;
      if (now !== started && now !== f.current) {
        throw new BisyncError(ErrorCode.REFUSED,
          `merge journal '${j.file}' belongs to another merge: ${side} '${i.path}' has current UUID ${now ?? 'none'}, the journal expects ${started} or ${f.current}`,
          { hint: 'remove the journal if that merge was abandoned' });
      }
    }
    // A side not yet finalised may have been written since the transfer (DRBD
    // brought up meanwhile, same UUIDs, more bits): finishing would drop that.
    const written: string[] = [];
    for (const [side, ep, i, started] of [['local', this.local, li, j.state.localCurrent], ['peer', this.peer, pi, j.state.peerCurrent]] as const) {
      if (j.state.changes && i.metadata?.uuids.current === started && changesDigest(await ep.changeSet()) !== j.state.changes[side]) written.push(`${side} '${i.path}'`);
    }
    if (written.length) {
      if (li.metadata?.uuids.current === f.current || pi.metadata?.uuids.current === f.current) {
        throw new BisyncError(ErrorCode.REFUSED,
          `${written.join(' and ')} changed since merge journal '${j.file}' finished its transfer, and the other node is already finalised: finishing would discard those writes`,
          { hint: 'inspect both nodes; nothing was written' });
      }
      delete j.state.final;
      j.state.phase = 'transfer';
      j.save();
      this.emit('log', `${written.join(' and ')} changed since the transfer: merging again`);
      return this.run();
    }
    await this.writeFinal(j);
    j.remove();
    const current = j.state.final!.current;
    return {
      ...this.emptyReport(undefined, 'merged', `finished an interrupted merge: both nodes now have current UUID ${current}`),
      finalized: { currentUuid: current },
      resumed: true,
    };
  }

  /** A journal from another merge (the UUIDs moved on since) must not steer this one. */
  private checkSameMerge(j: Journal, p: Plan): void {
    if (j.state.localCurrent !== p.local.currentUuid || j.state.peerCurrent !== p.peer.currentUuid) {
      throw new BisyncError(ErrorCode.REFUSED,
        `merge journal '${j.file}' belongs to another merge (UUIDs ${j.state.localCurrent}/${j.state.peerCurrent}, now ${p.local.currentUuid}/${p.peer.currentUuid})`,
        { hint: 'remove the journal if that merge was abandoned' });
    }
    // The conflicts lane may have overwritten blocks before its progress was
    // saved; a re-plan sees those as identical, so a new policy would mix winners.
    if (j.state.policy !== 'none' && j.state.policy !== (this.opts.onConflict ?? 'none')) {
      throw new BisyncError(ErrorCode.REFUSED, `merge journal '${j.file}' was started with --on-conflict ${j.state.policy}; resume it with the same policy`);
    }
    // The same holds for LV and metadata winners; a journal started without any may take them up.
    const was = j.state.lvm;
    if (was && !isEmptyLvm(was) && JSON.stringify(was) !== JSON.stringify(this.lvmRecord())) {
      throw new BisyncError(ErrorCode.REFUSED, `merge journal '${j.file}' was started with ${describeLvm(was)}; resume it with the same LVM resolutions`);
    }
  }

  /** New writes since the journal's plan may lie below a lane's progress: redo every lane (copies are idempotent). */
  private restartIfWritten(j: Journal, p: Plan): void {
    const now = { local: changesDigest(p.localChanges), peer: changesDigest(p.peerChanges) };
    if (!j.state.changes || (j.state.changes.local === now.local && j.state.changes.peer === now.peer)) return;
    j.state.changes = now;
    j.state.doneBelow = { ...NO_PROGRESS };
    j.save();
    this.emit('log', 'a node was written since the interrupted merge planned: transferring again from the start');
  }

  private newJournalState(p: Plan, policy: JournalState['policy']): JournalState {
    return {
      version: 1,
      device: p.local.path,
      peer: this.opts.peerLabel ?? p.peer.path,
      startedAt: new Date().toISOString(),
      localCurrent: p.local.currentUuid,
      peerCurrent: p.peer.currentUuid,
      commonBitmap: p.local.bitmapUuid,
      changes: { local: changesDigest(p.localChanges), peer: changesDigest(p.peerChanges) },
      policy,
      archive: this.opts.archive ?? null,
      phase: 'transfer',
      doneBelow: { ...NO_PROGRESS },
      lvm: this.lvmRecord(),
    };
  }

  /** The resolutions as the journal keeps them: sorted, so the same choice always compares equal. */
  private lvmRecord(): JournalLvm {
    const w = this.opts.lvWinners ?? {};
    return {
      lvWinners: Object.fromEntries(Object.keys(w).sort().map((k) => [k, w[k]])),
      vgMetadataWinner: this.opts.vgMetadataWinner ?? null,
      dropLvs: [...new Set(this.opts.dropLvs ?? [])].sort(),
      lvm: this.opts.lvm !== false,
    };
  }

  private emptyReport(p: Plan | undefined, outcome: MergeOutcome, message: string): MergeReport {
    return {
      outcome,
      message,
      plan: p ? planDocument(p) : {},
      movedToPeerBytes: 0,
      movedToLocalBytes: 0,
      conflictResolution: { policy: this.opts.onConflict ?? 'none', bytes: 0, archivedBytes: 0 },
      lvmResolution: { toPeerBytes: 0, toLocalBytes: 0, archivedBytes: 0 },
      lvm: p?.lvm ?? null,
      archive: this.opts.archive ?? null,
      verification: null,
      finalized: null,
      resumed: false,
    };
  }
}

function isEmptyLvm(r: JournalLvm): boolean {
  return Object.keys(r.lvWinners).length === 0 && r.vgMetadataWinner === null && r.dropLvs.length === 0 && r.lvm;
}

function describeLvm(r: JournalLvm): string {
  const parts = Object.entries(r.lvWinners).map(([k, v]) => `--lv ${k}=${v}`);
  if (r.vgMetadataWinner) parts.push(`--vg-metadata ${r.vgMetadataWinner}`);
  for (const d of r.dropLvs) parts.push(`--drop-lv ${d}`);
  if (!r.lvm) parts.push('--no-lvm');
  return parts.join(' ');
}

function changesDigest(extents: Extent[]): string {
  return createHash('sha256').update(JSON.stringify(extents)).digest('hex').slice(0, 32);
}

/** How often a transfer lane records its progress (after flushing its target). */
const JOURNAL_INTERVAL_MS = 500;

/** Runs a merge to completion (the library's one-call form). */
export function merge(local: Endpoint, peer: Endpoint, opts: MergeOptions = {}, onProgress?: (p: MergeProgress) => void): Promise<MergeReport> {
  const m = new Merge(local, peer, opts);
  if (onProgress) m.on('progress', onProgress);
  return m.run();
}

/** A merge's identity: derived from its journal (so a resumed merge keeps it) and the UUIDs it started from. */
function mergeIdentity(s: JournalState, p: Plan): MergeIdentity {
  const id = createHash('sha256').update(`${s.device}\n${s.peer}\n${s.localCurrent}\n${s.peerCurrent}\n${s.startedAt}`).digest('hex').slice(0, 12);
  return { id, startedAt: s.startedAt, local: { current: p.local.currentUuid, bitmap: p.local.bitmapUuid }, peer: { current: p.peer.currentUuid, bitmap: p.peer.bitmapUuid } };
}

/**
 * Every block is in at most one lane: the plain lanes run before the archived ones, so a
 * block in two would be overwritten before it is archived, or sent both ways. A plan that
 * breaks this is a bug; it stops the merge before anything is written.
 */
function checkDisjointLanes(p: Plan): void {
  const names = ['toPeer', 'toLocal', 'conflicts', 'forcedToPeer', 'forcedToLocal'] as const;
  const lanes = names.map((n) => normalize(p[n]));
  for (let i = 0; i < names.length; i++) {
    for (let k = i + 1; k < names.length; k++) {
      const [both] = intersect(lanes[i], lanes[k]);
      if (both) throw new Error(`internal error: the plan puts ${both[1]} bytes at offset ${both[0]} in both ${names[i]} and ${names[k]}; nothing was written`);
    }
  }
}

/** Extents at or above offset `below` (the part of a lane not yet done). */

export function clipBelow(extents: Extent[], below: number): Extent[] {
  if (below <= 0) return extents;
  const out: Extent[] = [];
  for (const [off, len] of extents) {
    if (off + len <= below) continue;
    out.push(off >= below ? [off, len] : [below, off + len - below]);
  }
  return out;
}

/** A random UUID with bit 0 clear (Secondary) that DRBD does not reserve. */
function newCurrentUuid(): string {
  for (;;) {
    const v = randomBytes(8).readBigUInt64BE() & ~1n;
    if (v > 4n) return formatUuid(v);
  }
}

/** The common generation (the bitmap UUID) moves into history, as DRBD does when a resync finishes. */
function rotatedHistory(md: MetadataReport): string[] {
  const keep = md.uuids.history.length;
  return [md.uuids.bitmap, ...md.uuids.history].slice(0, keep);
}

function finalUpdate(current: string, history: string[]) {
  return {
    uuids: { current, bitmap: formatUuid(0n), history },
    flags: { consistent: true, wasUpToDate: true, primary: false, crashedPrimary: false, fullSync: false, peerOutdated: false, connected: false },
    clearBitmap: true,
    clean: true,
  };
}

/** A lost link or an aborted lane: what a failure on the other lane leaves behind. */
function isLinkLoss(e: unknown): boolean {
  const x = e as { code?: string; name?: string };
  return x?.name === 'AbortError' || ['ECONNRESET', 'EPIPE', 'ABORT_ERR'].includes(x?.code ?? '');
}

/** An online copy whose blocks read back different: the survivor itself writes them. */
const ONLINE_VERIFY_HINT = 'something on this node wrote blocks the peer changed (an LV or file system in use?); stop it and run the merge again';
