// A live survivor's activity log for tests: hot extents written the way DRBD
// writes them (one AL transaction), checked by drbdmeta's own dump of the layout.
import { nb } from '../../lib/drbd/native';
import { dump } from '../../scripts/drbdmeta';
import { writeAt } from '../drbd/drbdmeta';

/** One AL transaction on a v08 internal-meta-data device naming these 4 MiB extents hot; the meta-data stays clean. */
export function markAlHot(device: string, extents: number[]): void {
  const m = dump({ fmt: 'v08', mdDev: device, placement: 'internal' });
  const blocks = m.alStripes * m.alStripeSize4k;
  const tr = 5000;
  const block = nb.alEncode({
    trNumber: tr, type: 0, contextSize: 257, contextStart: 0,
    updates: extents.map((e, slot) => [slot, e] as [number, number]),
    context: Array.from({ length: 919 }, () => 0xffffffff),
  });
  writeAt(device, m.alOffset + (tr % blocks) * 4096, block);
}
