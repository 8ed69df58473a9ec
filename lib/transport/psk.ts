// The pre-shared key both nodes hold, and the TLS settings that use it. TLS 1.2
// PSK cipher suites only: Node's pskCallback does not offer certificate-free
// PSK on TLS 1.3, and nothing here falls back to an unauthenticated channel.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';

export const MIN_PSK_BYTES = 16;
export const DEFAULT_IDENTITY = 'drbd-bisync';
/** AEAD suites only; OpenSSL uses AES-NI for the GCM ones. */
export const PSK_CIPHERS = 'PSK-AES256-GCM-SHA384:PSK-AES128-GCM-SHA256:PSK-CHACHA20-POLY1305';

/**
 * Reads a key file: hex (at least 32 digits, whitespace ignored at the ends) or
 * raw bytes (at least 16). Refuses a file that group or others may read.
 */
export function readPskFile(file: string): Buffer {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const hint = code === 'ENOENT' ? `check the --psk-file path, or make a key: openssl rand -hex 32 > ${file}; chmod 600 ${file}` : undefined;
    throw Object.assign(new Error(`cannot read pre-shared key file '${file}': ${(e as Error).message}`), { code, cause: e, ...(hint ? { hint } : {}) });
  }
  if (!st.isFile()) throw Object.assign(new Error(`pre-shared key file '${file}' is not a regular file`), { code: 'EINVAL' });
  const mode = st.mode & 0o777;
  if (mode & 0o077) {
    throw Object.assign(new Error(`pre-shared key file '${file}' has mode ${mode.toString(8).padStart(4, '0')}: readable by group or others`), { code: 'EPERM', hint: `chmod 600 ${file}` });
  }
  return parsePsk(fs.readFileSync(file), `pre-shared key file '${file}'`);
}

/** Hex text (trimmed) when it looks like hex, else the raw bytes. */
export function parsePsk(content: Buffer, what = 'pre-shared key'): Buffer {
  const text = content.toString('latin1').trim();
  if (text.length === 0) throw Object.assign(new Error(`${what} is empty`), { code: 'EINVAL' });
  if (/^[0-9a-fA-F]+$/.test(text)) {
    if (text.length % 2 !== 0) throw Object.assign(new Error(`${what} has an odd number of hex digits (${text.length})`), { code: 'EINVAL' });
    if (text.length < MIN_PSK_BYTES * 2) throw Object.assign(new Error(`${what} is too short: ${text.length} hex digits (${text.length / 2} bytes); at least ${MIN_PSK_BYTES * 2} hex digits (${MIN_PSK_BYTES} bytes) are needed`), { code: 'EINVAL' });
    return Buffer.from(text, 'hex');
  }
  if (content.length < MIN_PSK_BYTES) throw Object.assign(new Error(`${what} is too short: ${content.length} bytes; at least ${MIN_PSK_BYTES} are needed`), { code: 'EINVAL' });
  return Buffer.from(content);
}

/** A new random 32-byte key as hex text, ready for a 0600 key file. */
export function generatePsk(bytes = 32): string {
  if (!Number.isSafeInteger(bytes) || bytes < MIN_PSK_BYTES) throw new RangeError(`a pre-shared key needs at least ${MIN_PSK_BYTES} bytes, got ${bytes}`);
  return randomBytes(bytes).toString('hex');
}

/** Writes a new key file with mode 0600 (refuses to overwrite). */
export function writePskFile(file: string, bytes = 32): void {
  fs.writeFileSync(file, generatePsk(bytes) + '\n', { mode: 0o600, flag: 'wx' });
}

export function checkPsk(psk: unknown): asserts psk is Buffer {
  if (!Buffer.isBuffer(psk)) throw new TypeError(`psk must be a Buffer, got ${typeof psk}`);
  if (psk.length < MIN_PSK_BYTES) throw new RangeError(`psk must be at least ${MIN_PSK_BYTES} bytes, got ${psk.length}`);
}

/** TLS errors that mean the two sides hold different keys or identities. */
export function isAuthFailure(e: unknown): boolean {
  const code = String((e as { code?: unknown } | null)?.code ?? '');
  return /BAD_RECORD_MAC|DECRYPT|CIPHER_OPERATION_FAILED|PSK_IDENTITY|UNKNOWN_PSK/.test(code);
}
