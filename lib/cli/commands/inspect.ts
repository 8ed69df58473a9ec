// inspect: decode one node's DRBD meta-data (superblock, bitmap, activity log).
import { Command } from 'commander';
import { totalBytes } from '../../device/extent';
import { readMetadataAt } from '../../drbd/metadata';
import type { MetadataReport } from '../../drbd/types';
import { Exit, formatBytes, printJson, println, run } from '../output';

interface InspectOptions {
  metaDevice?: string;
  metaIndex?: string;
  flex?: boolean;
  format?: string;
  nodeId?: string;
  extents?: boolean;
  json?: boolean;
}

function parseIndex(o: InspectOptions): number | 'flex' | 'internal' {
  if (o.metaIndex !== undefined && o.flex) throw new RangeError('give either --meta-index or --flex, not both');
  if ((o.metaIndex !== undefined || o.flex) && !o.metaDevice) throw new RangeError(`${o.flex ? '--flex' : '--meta-index'} needs --meta-device`);
  if (o.metaIndex !== undefined) {
    const n = Number(o.metaIndex);
    if (!/^\d+$/.test(o.metaIndex) || n > 255) throw new RangeError(`--meta-index must be an integer 0 to 255, got '${o.metaIndex}'`);
    return n;
  }
  return o.metaDevice ? 'flex' : 'internal';
}

function parseNodeId(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  if (!/^\d+$/.test(s) || Number(s) > 31) throw new RangeError(`--node-id must be an integer 0 to 31, got '${s}'`);
  return Number(s);
}

function onOff(flags: object): string {
  const on = Object.entries(flags).filter(([k, v]) => k !== 'raw' && v === true).map(([k]) => k);
  return on.length ? on.join(', ') : '(none)';
}

function printHuman(path: string, r: MetadataReport): void {
  const where = r.placement.kind === 'internal' ? 'internal' : r.placement.kind === 'flex-external' ? `flex-external on ${r.placement.metaDevice}` : `index ${r.placement.index} on ${r.placement.metaDevice}`;
  println(`${path}: DRBD meta-data ${r.format}, ${where}, ${r.clean ? 'clean' : 'unclean (needs apply-al)'}`);
  println(`  superblock at ${r.mdOffset}, AL at ${r.alOffset}, bitmap at ${r.bmOffset}, ${r.mdSizeSectors} sectors`);
  println(`  usable size: ${formatBytes(r.laSizeSectors * 512)} (${r.laSizeSectors} sectors), ${formatBytes(r.bytesPerBit)} per bit`);
  println(`  current UUID ${r.uuids.current}, bitmap UUID ${r.uuids.bitmap}`);
  println(`  history: ${r.uuids.history.filter((h, i) => i < 2 || h !== '0000000000000000').join(' ')}`);
  println(`  device UUID ${r.deviceUuid}${r.nodeId !== undefined ? `, node id ${r.nodeId}, ${r.maxPeers} bitmap slot(s)` : ''}`);
  println(`  flags 0x${r.flags.raw.toString(16).padStart(8, '0')}: ${onOff(r.flags)}`);
  println(`  out of sync: ${r.bitsSet} bits, ${formatBytes(r.changedBytes)}`);
  println(`  activity log: ${r.alExtents.length ? `${r.alExtents.length} hot range(s), ${formatBytes(totalBytes(r.alExtents))}` : 'nothing to apply'}`);
  for (const p of r.peers ?? []) {
    println(`  peer ${p.nodeId}: slot ${p.bitmapIndex}, bitmap UUID ${p.bitmapUuid}, ${p.bitsSet} bits, flags ${onOff(p.flags)}`);
  }
  if (r.extents) for (const [off, len] of r.extents) println(`  ${off} +${len}`);
}

export function registerInspectCommand(program: Command): void {
  program
    .command('inspect')
    .description("decode a node's DRBD meta-data: UUIDs, flags, out-of-sync bitmap and activity log")
    .argument('<backing-device>', 'the DRBD backing device (holds internal meta-data)')
    .option('--meta-device <dev>', 'external meta-data device')
    .option('--meta-index <n>', 'indexed external meta-data slot (128 MiB each)')
    .option('--flex', 'flexible external meta-data (the default with --meta-device)')
    .option('--format <v08|v09>', 'expect this format (default: detect by magic)')
    .option('--node-id <n>', 'v09: report the bitmap for this peer node id')
    .option('--extents', 'list the out-of-sync byte ranges')
    .option('--json', 'print one JSON document')
    .action((backing: string, o: InspectOptions) =>
      run(!!o.json, async () => {
        const index = parseIndex(o);
        if (o.format !== undefined && o.format !== 'v08' && o.format !== 'v09') throw new RangeError(`--format must be v08 or v09, got '${o.format}'`);
        const peerNodeId = parseNodeId(o.nodeId);
        const h = await readMetadataAt(backing, { metaDevice: o.metaDevice, index, format: o.format as 'v08' | 'v09' | undefined });
        try {
          const r = await h.md.report({ extents: !!o.extents, peerNodeId });
          if (o.json) printJson(r);
          else printHuman(backing, r);
          return Exit.OK;
        } finally {
          await h.close();
        }
      }),
    );
}
