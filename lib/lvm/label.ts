// The PV label: LABELONE in one of sectors 0-3, then the pv_header with the
// data-area and metadata-area lists and the pv_header_extension. Layout from
// LVM2's lib/label/label.h and lib/format_text/layout.h, checked on 2.03.16 bytes.
import { lvmCrc } from './crc';
import { badLvm, hex, raw } from './errors';

export const SECTOR = 512;
/** LVM looks for the label in the first four 512-byte sectors. */
export const LABEL_SCAN_BYTES = 4 * SECTOR;
const LABEL_ID = 'LABELONE';
const LABEL_TYPE = 'LVM2 001';
const UUID_LEN = 32;

export interface Label {
  uuid: string;
  labelSector: number;
  deviceSize: number;
  peStart: number;
  /** Offset and size of each metadata area (mda_header first), before its header is read. */
  mdaLocations: Array<{ start: number; size: number }>;
  extVersion: number;
  extFlags: number;
}

/** `id_write_format`: 32 characters as 6-4-4-4-4-4-6. */
export function hyphenateUuid(raw: string): string {
  const parts: string[] = [];
  let i = 0;
  for (const n of [6, 4, 4, 4, 4, 4, 6]) {
    parts.push(raw.slice(i, i + n));
    i += n;
  }
  return parts.join('-');
}

const UUID_CHARS = /^[0-9a-zA-Z!#]{32}$/;

/**
 * Finds and checks the label in the first 2048 bytes of the device. Null when no
 * sector starts with LABELONE; a LABELONE sector that fails a check is refused
 * (LVM would skip it and try the next sector, so a later valid one still wins).
 */
export function parseLabel(head: Buffer, deviceSize: number): Label | null {
  let firstError: Error | null = null;
  for (const sector of labelOneSectors(head)) {
    const base = sector * SECTOR;
    try {
      return parseLabelAt(head.subarray(base, base + SECTOR), sector, deviceSize);
    } catch (e) {
      firstError ??= e as Error;
    }
  }
  if (firstError) throw firstError;
  return null;
}

/** The sectors among the first four that start with LABELONE, in order. */
function* labelOneSectors(head: Buffer): Generator<number> {
  for (let sector = 0; sector * SECTOR + SECTOR <= Math.min(head.length, LABEL_SCAN_BYTES); sector++) {
    if (head.toString('latin1', sector * SECTOR, sector * SECTOR + LABEL_ID.length) === LABEL_ID) yield sector;
  }
}

/**
 * The first sector with an LVM2 label by its id and type alone, undefined when none: enough to
 * tell that LVM uses the device, even when a damaged label would make parseLabel refuse.
 */
export function lvmLabelSector(head: Buffer): number | undefined {
  for (const sector of labelOneSectors(head)) {
    if (head.toString('latin1', sector * SECTOR + 24, sector * SECTOR + 32) === LABEL_TYPE) return sector;
  }
  return undefined;
}

function u64(buf: Buffer, off: number, field: string, abs: number): number {
  const v = buf.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw badLvm(field, abs, raw(v.toString()), 'is beyond 2^53');
  return Number(v);
}

function parseLabelAt(s: Buffer, sector: number, deviceSize: number): Label {
  const base = sector * SECTOR;
  const sectorXl = u64(s, 8, 'label_header.sector_xl', base + 8);
  if (sectorXl !== sector) throw badLvm('label_header.sector_xl', base + 8, sectorXl, `differs from the sector the label is in (${sector})`);
  const stored = s.readUInt32LE(16);
  const offsetXl = s.readUInt32LE(20);
  const computed = lvmCrc(s, 20, SECTOR);
  if (stored !== computed) {
    throw badLvm('label_header.crc_xl', base + 16, hex(stored), `does not match the CRC of the label sector (0x${computed.toString(16)})`);
  }
  const type = s.toString('latin1', 24, 32);
  if (type !== LABEL_TYPE) throw badLvm('label_header.type', base + 24, type, `is not "${LABEL_TYPE}" (only LVM2 text-format PVs are known)`);
  // pv_header: uuid, device size, then two disk_locn lists; all inside the sector.
  if (offsetXl < 32 || offsetXl + UUID_LEN + 8 + 16 > SECTOR) throw badLvm('label_header.offset_xl', base + 20, offsetXl, 'puts the pv_header outside the label sector');
  const rawUuid = s.toString('latin1', offsetXl, offsetXl + UUID_LEN);
  if (!UUID_CHARS.test(rawUuid)) throw badLvm('pv_header.pv_uuid', base + offsetXl, rawUuid, 'is not an LVM id');
  const size = u64(s, offsetXl + UUID_LEN, 'pv_header.device_size_xl', base + offsetXl + UUID_LEN);
  let p = offsetXl + UUID_LEN + 8;
  const list = (what: string): Array<{ start: number; size: number }> => {
    const out: Array<{ start: number; size: number }> = [];
    for (;;) {
      if (p + 16 > SECTOR) throw badLvm(`pv_header.${what}`, base + p, out.length, 'entries run past the label sector without the terminating entry');
      const start = u64(s, p, `pv_header.${what}[${out.length}].offset`, base + p);
      const len = u64(s, p + 8, `pv_header.${what}[${out.length}].size`, base + p + 8);
      p += 16;
      if (start === 0) return out;
      out.push({ start, size: len });
    }
  };
  const data = list('data_areas');
  const mdas = list('metadata_areas');
  if (data.length !== 1) throw badLvm('pv_header.data_areas', base + offsetXl + UUID_LEN + 8, data.length, 'entries (LVM writes exactly one)');
  const peStart = data[0].start;
  if (peStart % SECTOR !== 0 || peStart > deviceSize) throw badLvm('pv_header.data_areas[0].offset', base + offsetXl + UUID_LEN + 8, peStart, `is not a sector inside the device (${deviceSize} bytes)`);
  if (mdas.length > 2) throw badLvm('pv_header.metadata_areas', base + p - 16, mdas.length, 'entries (LVM writes at most two)');
  mdas.forEach((m, i) => {
    if (m.size < SECTOR || m.start % SECTOR !== 0 || m.start + m.size > deviceSize || m.start < LABEL_SCAN_BYTES) {
      throw badLvm(`pv_header.metadata_areas[${i}]`, base + offsetXl, raw(`${m.start}+${m.size}`), `is not a sector-aligned area of at least 512 bytes after the label inside the device (${deviceSize} bytes)`);
    }
  });
  let extVersion = 0;
  let extFlags = 0;
  if (p + 8 <= SECTOR) {
    extVersion = s.readUInt32LE(p);
    extFlags = s.readUInt32LE(p + 4);
  }
  return { uuid: hyphenateUuid(rawUuid), labelSector: sector, deviceSize: size, peStart, mdaLocations: mdas, extVersion, extFlags };
}

