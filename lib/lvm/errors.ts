// Every refusal of the LVM reader: the field, where it lies and what it held,
// so an operator can check the claim with `pvck`/`vgcfgbackup` or a hex dump.
import { BisyncError, ErrorCode } from '../device/errors';

/** A value shown as it is (hex, ranges, "missing"), not quoted like data read from the device. */
export class Raw {
  constructor(readonly text: string) {}
}
export const raw = (text: string): Raw => new Raw(text);
export const hex = (n: number | bigint): Raw => new Raw(`0x${n.toString(16)}`);

/** Shows a value the way the message needs it: strings quoted and cut, numbers as they are. */
export function show(value: unknown): string {
  if (value instanceof Raw) return value.text;
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}...` : value);
  if (typeof value === 'number' && Number.isInteger(value) && value > 0xffff) return `${value} (0x${value.toString(16)})`;
  return String(value);
}

/**
 * `field` names the structure and field ("mda_header.checksum_xl"), `offset`
 * the byte on the device (or in the text, when `where` says so).
 */
export function badLvm(field: string, offset: number, value: unknown, why: string, where = 'byte'): BisyncError {
  return new BisyncError(ErrorCode.BAD_LVM, `LVM ${field} at ${where} ${offset}: ${show(value)} ${why}`, {
    hint: 'the LVM2 meta-data on this device is damaged or of an unknown kind; check it with `pvck` and `vgck`, or run with --no-lvm to merge in plain block mode',
  });
}
