// info, diff, copy: block-device commands.
import * as fs from 'node:fs';
import { Command } from 'commander';
import { BlockDevice } from '../../device/block-device';
import { copyExtents, diffDevices } from '../../device/compare';
import { Extent, normalize, totalBytes } from '../../device/extent';
import { Exit, confirmWrite, formatBytes, parseSize, printJson, println, progress, run } from '../output';

export function registerDeviceCommands(program: Command): void {
  program
    .command('info')
    .description('show size, sector sizes, read-only flag and loop backing file of a device')
    .argument('<device>', 'block device or image file')
    .option('--json', 'print one JSON document')
    .action((device: string, o: { json?: boolean }) =>
      run(!!o.json, async () => {
        const dev = await BlockDevice.open(device);
        try {
          const doc = {
            path: dev.path,
            size: dev.size,
            logicalSectorSize: dev.logicalSectorSize,
            physicalSectorSize: dev.physicalSectorSize,
            readOnly: dev.readOnly,
            isBlockDevice: dev.isBlockDevice,
            devno: dev.devno ?? null,
            loopBackingFile: dev.loopBackingFile ?? null,
            direct: dev.direct,
            directFallback: dev.directFallback ?? null,
          };
          if (o.json) printJson(doc);
          else {
            println(`${dev.path}: ${formatBytes(dev.size)} (${dev.size} bytes), ${dev.isBlockDevice ? `block device ${dev.devno}` : 'regular file'}`);
            println(`  sectors: logical ${dev.logicalSectorSize}, physical ${dev.physicalSectorSize}${dev.readOnly ? ', read-only' : ''}`);
            if (dev.loopBackingFile) println(`  loop backing file: ${dev.loopBackingFile}`);
            if (dev.directFallback) println(`  ${dev.directFallback}`);
          }
          return Exit.OK;
        } finally {
          await dev.close();
        }
      }),
    );

  program
    .command('diff')
    .description('list the blocks that differ between two devices (exit 0 identical, 1 different, 2 error)')
    .argument('<deviceA>')
    .argument('<deviceB>')
    .option('--block-size <size>', 'comparison granularity', '4K')
    .option('--json', 'print one JSON document')
    .action((a: string, b: string, o: { blockSize: string; json?: boolean }) =>
      run(!!o.json, async () => {
        const blockSize = parseSize(o.blockSize, '--block-size');
        const [devA, devB] = [await BlockDevice.open(a), await BlockDevice.open(b)];
        try {
          noteFallback(devA, devB);
          const bar = progress('diff', devA.size, !o.json);
          // JSON needs the whole list, and on a terminal the lines would
          // tangle with the progress bar; piped human output streams, so a
          // huge difference does not have to fit in memory.
          const stream = !o.json && !process.stdout.isTTY;
          const extents: Extent[] = [];
          let count = 0;
          let differentBytes = 0;
          try {
            for await (const e of diffDevices(devA, devB, blockSize, { onProgress: (d) => bar.update(d) })) {
              count++;
              differentBytes += e[1];
              if (stream) println(`${e[0]}\t${e[1]}`);
              else extents.push(e);
            }
          } finally {
            bar.stop();
          }
          if (o.json) printJson({ identical: count === 0, blockSize, differentBytes, extents });
          else {
            for (const [off, len] of extents) println(`${off}\t${len}`);
            println(count ? `${formatBytes(differentBytes)} differ in ${count} extent(s)` : 'identical');
          }
          return count ? Exit.DIFFERENT : Exit.OK;
        } finally {
          await Promise.all([devA.close(), devB.close()]);
        }
      }),
    );

  program
    .command('copy')
    .description('copy extents from one device to another at the same offsets')
    .argument('<src>')
    .argument('<dst>')
    .requiredOption('--extents <file|->', 'JSON array of [offsetBytes, lengthBytes] (as printed by diff --json, or its "extents")')
    .option('--yes', 'write without asking')
    .option('--json', 'print one JSON document')
    .action((src: string, dst: string, o: { extents: string; yes?: boolean; json?: boolean }) =>
      run(!!o.json, async () => {
        const extents = readExtentsFile(o.extents);
        const total = totalBytes(extents);
        const devSrc = await BlockDevice.open(src);
        try {
          const devDst = await BlockDevice.open(dst, { write: true });
          try {
            noteFallback(devSrc, devDst);
            await confirmWrite(o.yes, `${formatBytes(total)} to ${dst}`);
            const bar = progress('copy', total, !o.json);
            const copied = await copyExtents(devSrc, devDst, extents, { onProgress: (d) => bar.update(d) }).finally(() => bar.stop());
            await devDst.flush();
            if (o.json) printJson({ copiedBytes: copied, extents: extents.length });
            else println(`copied ${formatBytes(copied)} in ${extents.length} extent(s)`);
            return Exit.OK;
          } finally {
            await devDst.close();
          }
        } finally {
          await devSrc.close();
        }
      }),
    );
}

/** Buffered I/O instead of O_DIRECT is slower and fills the page cache: say so (stderr). */
function noteFallback(...devs: BlockDevice[]): void {
  for (const d of devs) if (d.directFallback) process.stderr.write(`drbd-bisync: note: '${d.path}': ${d.directFallback}\n`);
}

/** Reads an extent list: a JSON array of pairs, or an object with an "extents" array (diff --json output). */
export function readExtentsFile(file: string): Extent[] {
  const text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(`--extents ${file}: not JSON (${(e as Error).message})`);
  }
  const list = Array.isArray(doc) ? doc : (doc as { extents?: unknown })?.extents;
  if (!Array.isArray(list)) throw new TypeError(`--extents ${file}: expected an array of [offset, length] pairs`);
  list.forEach((e, i) => {
    if (!Array.isArray(e) || e.length !== 2 || !e.every((v) => Number.isSafeInteger(v) && v >= 0) || e[1] === 0) {
      throw new RangeError(`--extents ${file}: entry ${i} must be [offsetBytes, lengthBytes] with non-negative integers, got ${JSON.stringify(e)}`);
    }
  });
  return normalize(list as Extent[]);
}
