// One node's DRBD meta-data: read, report, change set, and crash-safe update.
import { BlockDevice } from '../device/block-device';
import { BisyncError, ErrorCode } from '../device/errors';
import { Extent, checkExtent, normalize, subtract, totalBytes, union } from '../device/extent';
import { mdFailpoint } from './failpoint';
import { AL_EXTENT_SIZE, alByteExtents, initializedAl, readAl, replayAl } from './activity-log';
import { SlotGeometry, bitRanges, editBitmap, innerBitRanges, scanSlot, scanSlotChunks } from './bitmap';
import { Index, Layout, MAGIC, MDF, MDF_PEER, Superblock, bad, decodeSuperblock, encodeSuperblock, layoutOf, superblockOffset, SUPERBLOCK_SIZE, PEERS_MAX } from './superblock';
import type { MetadataFlags, MetadataFormat, MetadataPlacement, MetadataReport, MetadataUpdate, PeerSlotReport } from './types';
import { formatUuid, parseUuid } from './uuid';

export interface MetadataLocation {
  metaDevice?: string;
  index?: Index;
  /** Autodetected from the magic when absent. */
  format?: MetadataFormat;
}

export interface ReadLocation {
  metaDevice?: BlockDevice;
  index?: Index;
  format?: MetadataFormat;
}

function checkIndex(index: unknown, hasMetaDevice: boolean): Index {
  const idx = (index ?? (hasMetaDevice ? 'flex' : 'internal')) as Index;
  if (idx === 'internal' || idx === 'flex') return idx;
  if (typeof idx !== 'number' || !Number.isInteger(idx) || idx < 0 || idx > 255) throw new RangeError(`meta-data index must be 'internal', 'flex' or an integer 0 to 255, got ${JSON.stringify(index)}`);
  return idx;
}

const bit = (flags: number, b: number): boolean => (flags & b) !== 0;

export class DrbdMetadata {
  private sb!: Superblock;
  private raw!: Buffer;
  private layout!: Layout;

  private constructor(
    readonly backing: BlockDevice,
    readonly metaDevice: BlockDevice,
    readonly index: Index,
  ) {}

  /** Reads and validates the superblock and the layout it claims. */
  static async read(backing: BlockDevice, loc: ReadLocation = {}): Promise<DrbdMetadata> {
    const index = checkIndex(loc.index, !!loc.metaDevice);
    if (index !== 'internal' && !loc.metaDevice) throw new RangeError(`meta-data index ${index} needs a meta-data device`);
    if (loc.format !== undefined && loc.format !== 'v08' && loc.format !== 'v09') throw new RangeError(`meta-data format must be 'v08' or 'v09', got ${JSON.stringify(loc.format)}`);
    const md = new DrbdMetadata(backing, index === 'internal' ? backing : loc.metaDevice!, index);
    await md.load(loc.format);
    return md;
  }

  private async load(format?: MetadataFormat): Promise<void> {
    const dev = this.metaDevice;
    if (dev.size < 2 * SUPERBLOCK_SIZE) throw bad(`'${dev.path}' is ${dev.size} bytes, too small to hold DRBD meta-data`);
    const mdOffset = superblockOffset(this.index, dev.size);
    if (mdOffset + SUPERBLOCK_SIZE > dev.size) throw bad(`meta-data index ${this.index} puts the superblock at ${mdOffset}, past the end of '${dev.path}' (${dev.size} bytes)`);
    const where = `'${dev.path}' offset ${mdOffset}`;
    const raw = await dev.read(mdOffset, SUPERBLOCK_SIZE);
    const sb = decodeSuperblock(raw, where, format);
    this.layout = layoutOf(sb, this.index, mdOffset, dev.size, this.backing.size, where);
    this.sb = sb;
    this.raw = raw;
  }

  /**
   * Reads the superblock from the device again: another writer (drbdmeta, DRBD
   * brought up meanwhile) may have changed it since read(). The bitmap and AL
   * are always read from the device; only the superblock is kept.
   */
  async reload(): Promise<void> {
    await this.load(this.sb.format);
  }

  get format(): MetadataFormat {
    return this.sb.format;
  }

  /** la_size in bytes: the DRBD device's usable size. */
  get dataSize(): number {
    return this.layout.dataSize;
  }

  get nodeId(): number | undefined {
    return this.sb.format === 'v09' ? this.sb.nodeId : undefined;
  }

  /** v09: the only peer with a bitmap slot; undefined for v08, or when none or several. */
  get defaultPeer(): number | undefined {
    if (this.sb.format !== 'v09') return undefined;
    const withSlot = this.sb.peers.filter((p) => p.bitmapIndex >= 0 && p.nodeId !== this.sb.nodeId);
    return withSlot.length === 1 ? withSlot[0].nodeId : undefined;
  }

  /** Not unclean: magic v08/v09 (not 84-unclean) and MDF_AL_CLEAN. */
  get clean(): boolean {
    return this.sb.magic !== MAGIC.V84_UNCLEAN && bit(this.sb.flags, MDF.AL_CLEAN);
  }

  /** A copy of the decoded superblock. */
  get superblock(): Superblock {
    return { ...this.sb, history: [...this.sb.history], peers: this.sb.peers.map((p) => ({ ...p })) };
  }

  private where(): string {
    return `'${this.metaDevice.path}' offset ${this.layout.mdOffset}`;
  }

  private geometry(): SlotGeometry {
    const l = this.layout;
    return { bmStart: l.bmStart, maxPeers: this.sb.maxPeers, nBits: l.nBits, wordsPerSlot: l.wordsPerSlot, bytesPerBit: this.sb.bmBytesPerBit, dataSize: l.dataSize };
  }

  /** The peer a v09 per-peer operation means: the given one, else the default. */
  private peerOf(peerNodeId: number | undefined, what: string): number {
    if (peerNodeId !== undefined) {
      if (!Number.isInteger(peerNodeId) || peerNodeId < 0 || peerNodeId >= PEERS_MAX) throw new RangeError(`peer node id must be an integer 0 to ${PEERS_MAX - 1}, got ${peerNodeId}`);
      if (peerNodeId === this.sb.nodeId) throw new RangeError(`peer node id ${peerNodeId} is this node's own id`);
      return peerNodeId;
    }
    const d = this.defaultPeer;
    if (d === undefined) {
      const slots = this.sb.peers.filter((p) => p.bitmapIndex >= 0).map((p) => p.nodeId);
      throw new BisyncError(ErrorCode.BAD_METADATA, `${what}: no default peer in the v09 meta-data at ${this.where()} (peers with a bitmap slot: ${slots.length ? slots.join(', ') : 'none'}); give a peer node id`);
    }
    return d;
  }

  private slotOf(peerNodeId: number | undefined, what: string): number | undefined {
    if (this.sb.format === 'v08') return 0;
    const p = this.sb.peers[this.peerOf(peerNodeId, what)];
    return p.bitmapIndex >= 0 ? p.bitmapIndex : undefined;
  }

  /** Coalesced byte extents of the set bits, ascending, clipped to dataSize. */
  bitmapExtents(peerNodeId?: number): AsyncIterable<Extent> {
    return scanSlot(this.metaDevice, this.geometry(), this.bitmapSlot(peerNodeId));
  }

  private bitmapChunks(peerNodeId?: number): AsyncIterable<Extent[]> {
    return scanSlotChunks(this.metaDevice, this.geometry(), this.bitmapSlot(peerNodeId));
  }

  private bitmapSlot(peerNodeId?: number): number {
    const slot = this.slotOf(peerNodeId, 'bitmap');
    if (slot === undefined) throw bad(`peer ${peerNodeId ?? this.defaultPeer} has no bitmap slot in the meta-data at ${this.where()}`);
    return slot;
  }

  /**
   * The AL extents drbdmeta apply-al would fold into the bitmap: the replayed
   * hot extents when the meta-data is unclean and the primary flag is set
   * (4 MiB each, clipped to dataSize); empty otherwise.
   */
  async alExtents(opts: { live?: boolean } = {}): Promise<Extent[]> {
    // live: the resource is up here and DRBD owns the AL; every hot extent may hold writes the on-disk bitmap lacks.
    if (!opts.live && (this.clean || !bit(this.sb.flags, MDF.PRIMARY_IND))) return [];
    const l = this.layout;
    const g = { alStart: l.alStart, alBytes: l.alBytes, alStripes: this.sb.alStripes, alStripeSize4k: this.sb.alStripeSize4k, dataSize: l.dataSize };
    const r = replayAl(await readAl(this.metaDevice, g), g, this.where());
    return alByteExtents(r.hotExtents, l.dataSize);
  }

  /**
   * Everything that may differ from the peer: [[0, dataSize]] when DRBD itself would do a full sync.
   * live: read while DRBD has the device attached: the on-disk bitmap plus every hot AL extent
   * (DRBD writes a bitmap page out before its extent leaves the AL, so together they cover every write).
   */
  async changeSet(peerNodeId?: number, opts: { live?: boolean } = {}): Promise<Extent[]> {
    return (await this.changes(peerNodeId, opts)).changes;
  }

  /**
   * changeSet() and, live, the part of it that only hot AL extents put there: DRBD may hold
   * those bits in memory only, so whether this node wrote those blocks is in doubt (the
   * bitmap's own bits are certain). One read of bitmap and AL for both, so the two agree
   * on a device DRBD is writing. No doubt when the change set is the whole device.
   */
  async changes(peerNodeId?: number, opts: { live?: boolean } = {}): Promise<{ changes: Extent[]; doubt: Extent[] }> {
    if (this.needsFullSync(peerNodeId)) return { changes: this.dataSize > 0 ? [[0, this.dataSize]] : [], doubt: [] };
    const bm: Extent[] = [];
    for await (const chunk of this.bitmapChunks(peerNodeId)) for (const e of chunk) bm.push(e);
    const al = await this.alExtents(opts);
    if (!al.length) return { changes: bm, doubt: [] };
    return { changes: [...union(bm, al)], doubt: opts.live ? [...subtract(al, bm)] : [] };
  }

  /** DRBD itself would sync the whole device with this peer (crashed primary without AL, full-sync flags). */
  private needsFullSync(peerNodeId?: number): boolean {
    const f = this.sb.flags;
    const peer = this.sb.format === 'v09' ? this.sb.peers[this.peerOf(peerNodeId, 'change set')] : undefined;
    if (bit(f, MDF.CRASHED_PRIMARY) && bit(f, MDF.AL_DISABLED)) return true;
    if (this.sb.format === 'v08' && bit(f, MDF.FULL_SYNC)) return true;
    return !!peer && (peer.bitmapIndex < 0 || bit(peer.flags, MDF_PEER.FULL_SYNC));
  }

  private flagsReport(peerFlags: number | undefined): MetadataFlags {
    const f = this.sb.flags;
    const v09 = this.sb.format === 'v09';
    const pf = peerFlags ?? 0;
    return {
      consistent: bit(f, MDF.CONSISTENT),
      wasUpToDate: bit(f, MDF.WAS_UP_TO_DATE),
      primary: bit(f, MDF.PRIMARY_IND),
      connected: v09 ? bit(pf, MDF_PEER.CONNECTED) : bit(f, MDF.CONNECTED_IND),
      fullSync: v09 ? bit(pf, MDF_PEER.FULL_SYNC) : bit(f, MDF.FULL_SYNC),
      peerOutdated: v09 ? bit(pf, MDF_PEER.OUTDATED) : bit(f, MDF.PEER_OUT_DATED),
      crashedPrimary: bit(f, MDF.CRASHED_PRIMARY),
      alClean: bit(f, MDF.AL_CLEAN),
      alDisabled: bit(f, MDF.AL_DISABLED),
      raw: f >>> 0,
    };
  }

  private placement(): MetadataPlacement {
    if (this.index === 'internal') return { kind: 'internal' };
    if (this.index === 'flex') return { kind: 'flex-external', metaDevice: this.metaDevice.path };
    return { kind: 'indexed', metaDevice: this.metaDevice.path, index: this.index };
  }

  private bitsOf(extents: readonly Extent[]): number {
    const B = this.sb.bmBytesPerBit;
    let n = 0;
    for (const [o, l] of extents) n += Math.ceil((o + l) / B) - Math.floor(o / B);
    return n;
  }

  /** The `inspect --json` document. v09: top-level bitmap fields describe the given or default peer, else the union of all slots. */
  async report(opts: { extents?: boolean; peerNodeId?: number } = {}): Promise<MetadataReport> {
    const sb = this.sb;
    const l = this.layout;
    const geo = this.geometry();
    const peer = sb.format === 'v09' ? (opts.peerNodeId !== undefined ? this.peerOf(opts.peerNodeId, 'report') : this.defaultPeer) : undefined;
    // Extents are kept only when printed, or for the union of all v09 slots.
    const keep = !!opts.extents || (sb.format === 'v09' && peer === undefined);
    const collect = async (slot: number): Promise<{ bitsSet: number; extents: Extent[]; bytes: number }> => {
      const stats = { bitsSet: 0 };
      const extents: Extent[] = [];
      let bytes = 0;
      for await (const chunk of scanSlotChunks(this.metaDevice, geo, slot, stats)) {
        for (const e of chunk) {
          bytes += e[1];
          if (keep) extents.push(e);
        }
      }
      return { bitsSet: stats.bitsSet, extents, bytes };
    };
    const doc: MetadataReport = {
      format: sb.format,
      placement: this.placement(),
      mdOffset: l.mdOffset,
      mdSizeSectors: sb.mdSizeSect,
      alOffset: l.alStart,
      bmOffset: l.bmStart,
      laSizeSectors: sb.laSizeSect,
      bytesPerBit: sb.bmBytesPerBit,
      uuids: { current: formatUuid(sb.current), bitmap: formatUuid(sb.bitmap), history: sb.history.map(formatUuid) },
      deviceUuid: formatUuid(sb.deviceUuid),
      flags: this.flagsReport(undefined),
      clean: this.clean,
      bitsSet: 0,
      changedBytes: 0,
      alExtents: await this.alExtents(),
    };
    if (sb.format === 'v08') {
      const s = await collect(0);
      doc.bitsSet = s.bitsSet;
      doc.changedBytes = s.bytes;
      if (opts.extents) doc.extents = s.extents;
      return doc;
    }
    doc.nodeId = sb.nodeId;
    doc.maxPeers = sb.maxPeers;
    doc.peers = [];
    let unionExtents: Extent[] = [];
    for (const p of sb.peers) {
      if (p.nodeId === sb.nodeId || (p.bitmapIndex < 0 && p.bitmapUuid === 0n && p.flags === 0)) continue;
      const s = p.bitmapIndex >= 0 ? await collect(p.bitmapIndex) : { bitsSet: 0, extents: [], bytes: 0 };
      const slot: PeerSlotReport = {
        nodeId: p.nodeId,
        bitmapIndex: p.bitmapIndex,
        bitmapUuid: formatUuid(p.bitmapUuid),
        bitmapDagtag: formatUuid(p.bitmapDagtag),
        flags: {
          connected: bit(p.flags, MDF_PEER.CONNECTED),
          outdated: bit(p.flags, MDF_PEER.OUTDATED),
          fencing: bit(p.flags, MDF_PEER.FENCING),
          fullSync: bit(p.flags, MDF_PEER.FULL_SYNC),
          deviceSeen: bit(p.flags, MDF_PEER.DEVICE_SEEN),
          nodeExists: bit(p.flags, MDF_PEER.NODE_EXISTS),
          raw: p.flags >>> 0,
        },
        bitsSet: s.bitsSet,
      };
      if (opts.extents) slot.extents = s.extents;
      doc.peers.push(slot);
      if (peer === p.nodeId) {
        doc.uuids.bitmap = slot.bitmapUuid;
        doc.flags = this.flagsReport(p.flags);
        doc.bitsSet = s.bitsSet;
        doc.changedBytes = s.bytes;
        if (opts.extents) doc.extents = s.extents;
      } else if (peer === undefined) {
        unionExtents = [...union(unionExtents, s.extents)];
      }
    }
    if (peer === undefined) {
      doc.bitsSet = this.bitsOf(unionExtents);
      doc.changedBytes = totalBytes(unionExtents);
      if (opts.extents) doc.extents = unionExtents;
    } else if (sb.peers[peer].bitmapIndex < 0 && doc.peers.every((s) => s.nodeId !== peer)) {
      doc.uuids.bitmap = formatUuid(sb.peers[peer].bitmapUuid);
      doc.flags = this.flagsReport(sb.peers[peer].flags);
      if (opts.extents) doc.extents = [];
    }
    return doc;
  }

  /**
   * Applies the update in an order where a crash at any point leaves meta-data
   * DRBD accepts and a bitmap that still covers every change:
   *  1. bits to set are OR-ed in (bitmap only grows);
   *  2. with `clean`: the AL's hot extents are folded into the bitmap as
   *     apply-al does, then the AL is re-initialised;
   *  3. the superblock (UUIDs, flags, clean magic) is written;
   *  4. bitmaps and bit ranges to clear are cleared, with the bits to set re-applied in the
   *     same page write (as the kernel clears the bitmap only after the new
   *     UUIDs are on disk, e.g. new-current-uuid --clear-bitmap).
   * Each step is flushed before the next. Re-reads the meta-data afterwards.
   */
  async update(u: MetadataUpdate): Promise<void> {
    for (const d of new Set([this.backing, this.metaDevice])) {
      if (!d.writable) throw new BisyncError(ErrorCode.READ_ONLY, `meta-data update needs '${d.path}' opened for writing`);
    }
    const plan = this.plan(u);
    // Replayed before any write: a corrupt AL must fail the update, not half-apply it.
    const al = u.clean ? await this.alExtents() : [];
    const dev = this.metaDevice;
    const geo = this.geometry();
    if (plan.set.length && plan.setSlots.length) {
      await editBitmap(dev, geo, { clearSlots: [], setSlots: plan.setSlots, set: plan.set });
      await dev.flush();
      mdFailpoint('after-set-bits');
    }
    if (u.clean) {
      // Into every slot, also those cleared later: until the superblock is
      // written, a crash must find the AL's extents in the bitmap.
      const foldSlots = [...Array(this.sb.maxPeers).keys()];
      if (al.length) {
        // apply-al sets whole 4 MiB extents, also past la_size inside the bitmap.
        const g = { ...geo, nBits: Math.min(geo.wordsPerSlot * 32, Math.ceil((geo.dataSize + AL_EXTENT_SIZE) / geo.bytesPerBit)) };
        await editBitmap(dev, geo, { clearSlots: [], setSlots: foldSlots, set: [...bitRanges(al.map(([o, n]) => [o, Math.ceil((o + n) / AL_EXTENT_SIZE) * AL_EXTENT_SIZE - o] as Extent), g)] });
        await dev.flush();
        mdFailpoint('after-al-fold');
      }
      await dev.write(initializedAl(this.layout.alBytes), this.layout.alStart);
      await dev.flush();
      mdFailpoint('after-al-init');
    }
    await dev.write(encodeSuperblock(plan.sb, this.raw), this.layout.mdOffset);
    await dev.flush();
    mdFailpoint('after-superblock');
    if (plan.clearSlots.length || plan.clear.length) {
      let chunks = 0;
      await editBitmap(dev, geo, { clearSlots: plan.clearSlots, clear: plan.clear, setSlots: plan.setSlots, set: plan.set }, () => {
        if (++chunks === 1) mdFailpoint('mid-clear');
      });
      await dev.flush();
    }
    await this.load(this.sb.format);
  }

  /** Validates the whole update and computes the new superblock before anything is written. */
  private plan(u: MetadataUpdate): { sb: Superblock; clearSlots: number[]; setSlots: number[]; set: Array<[number, number]>; clear: Array<[number, number]> } {
    if (typeof u !== 'object' || u === null) throw new TypeError('meta-data update must be an object');
    const sb = this.superblock;
    const v09 = sb.format === 'v09';
    const needsPeer = v09 && (u.uuids?.bitmap !== undefined || u.flags?.connected !== undefined || u.flags?.peerOutdated !== undefined || u.flags?.fullSync !== undefined);
    const peer = needsPeer || (v09 && u.peerNodeId !== undefined) ? this.peerOf(u.peerNodeId, 'meta-data update') : undefined;
    if (u.uuids) {
      const { current, bitmap, history } = u.uuids;
      if (current !== undefined) sb.current = parseUuid(current);
      if (bitmap !== undefined) {
        const v = parseUuid(bitmap);
        if (!v09) sb.bitmap = v;
        else {
          const p = sb.peers[peer!];
          p.bitmapUuid = v;
          if (v === 0n) p.bitmapDagtag = 0n;
        }
      }
      if (history !== undefined) {
        const max = v09 ? 32 : 2;
        if (!Array.isArray(history) || (v09 ? history.length > max : history.length !== max)) throw new RangeError(`uuids.history for ${sb.format} must have ${v09 ? 'up to 32' : 'exactly 2'} entries, got ${JSON.stringify(history)}`);
        sb.history = Array.from({ length: max }, (_, i) => (i < history.length ? parseUuid(history[i]) : 0n));
      }
    }
    if (u.flags) {
      const setBit = (word: number, b: number, on: boolean | undefined): number => (on === undefined ? word : on ? word | b : word & ~b) >>> 0;
      for (const [k, v] of Object.entries(u.flags)) if (v !== undefined && typeof v !== 'boolean') throw new TypeError(`flag ${k} must be a boolean, got ${JSON.stringify(v)}`);
      const f = u.flags;
      let w = sb.flags;
      w = setBit(w, MDF.CONSISTENT, f.consistent);
      w = setBit(w, MDF.WAS_UP_TO_DATE, f.wasUpToDate);
      w = setBit(w, MDF.PRIMARY_IND, f.primary);
      w = setBit(w, MDF.CRASHED_PRIMARY, f.crashedPrimary);
      w = setBit(w, MDF.AL_CLEAN, f.alClean);
      w = setBit(w, MDF.AL_DISABLED, f.alDisabled);
      if (!v09) {
        w = setBit(w, MDF.CONNECTED_IND, f.connected);
        w = setBit(w, MDF.PEER_OUT_DATED, f.peerOutdated);
        w = setBit(w, MDF.FULL_SYNC, f.fullSync);
      } else if (peer !== undefined) {
        const p = sb.peers[peer];
        p.flags = setBit(p.flags, MDF_PEER.CONNECTED, f.connected);
        p.flags = setBit(p.flags, MDF_PEER.OUTDATED, f.peerOutdated);
        p.flags = setBit(p.flags, MDF_PEER.FULL_SYNC, f.fullSync);
      }
      sb.flags = w;
    }
    if (u.clean) {
      sb.flags = (sb.flags | MDF.AL_CLEAN) >>> 0;
      if (!v09) sb.magic = MAGIC.V08;
    }
    const allSlots = [...Array(sb.maxPeers).keys()];
    const targetSlot = (): number[] => {
      if (!v09 || peer === undefined) return allSlots;
      const s = sb.peers[peer].bitmapIndex;
      if (s < 0) throw bad(`peer ${peer} has no bitmap slot in the meta-data at ${this.where()}`);
      return [s];
    };
    const clearSlots = u.clearBitmap ? targetSlot() : [];
    const extents = (what: 'setBits' | 'clearBits', list: unknown): Extent[] => {
      if (!Array.isArray(list)) throw new TypeError(`${what} must be an array of [offset, length] extents`);
      for (const e of list as Extent[]) {
        if (!Array.isArray(e) || e.length !== 2) throw new TypeError(`${what} entries must be [offset, length], got ${JSON.stringify(e)}`);
        checkExtent(e, `${what} extent`);
        if (e[0] + e[1] > this.dataSize) throw new RangeError(`${what} extent [${e[0]}, ${e[1]}] ends past the data size ${this.dataSize}`);
      }
      return normalize(list as Extent[]);
    };
    const set = u.setBits !== undefined ? [...bitRanges(extents('setBits', u.setBits), this.geometry())] : [];
    const clear = u.clearBits !== undefined ? innerBitRanges(extents('clearBits', u.clearBits), this.geometry()) : [];
    const setSlots = u.setBits !== undefined || u.clearBits !== undefined ? targetSlot() : [];
    return { sb, clearSlots, setSlots, set, clear };
  }
}

/** Opens the backing (and meta-data) device and reads the meta-data. */
export async function readMetadataAt(path: string, loc: MetadataLocation = {}, opts: { write?: boolean } = {}): Promise<{ md: DrbdMetadata; device: BlockDevice; close(): Promise<void> }> {
  const write = opts.write ?? false;
  const device = await BlockDevice.open(path, { write });
  let meta: BlockDevice | undefined;
  try {
    if (loc.metaDevice !== undefined && loc.metaDevice !== path) meta = await BlockDevice.open(loc.metaDevice, { write });
    const index = loc.index ?? (loc.metaDevice !== undefined ? 'flex' : 'internal');
    const md = await DrbdMetadata.read(device, { metaDevice: meta ?? (loc.metaDevice !== undefined ? device : undefined), index, format: loc.format });
    return {
      md,
      device,
      async close() {
        await Promise.all([device.close(), meta?.close()]);
      },
    };
  } catch (e) {
    await Promise.all([device.close(), meta?.close()]);
    throw e;
  }
}
