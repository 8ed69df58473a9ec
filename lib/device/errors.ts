// Library-level errors. Native failures arrive as SystemError-shaped Errors
// (code, errno, syscall, path); these cover what is not a syscall failure.

export const ErrorCode = {
  DEVICE_CLOSED: 'ERR_DEVICE_CLOSED',
  READ_ONLY: 'ERR_DEVICE_READ_ONLY',
  SIZE_MISMATCH: 'ERR_SIZE_MISMATCH',
  BAD_METADATA: 'ERR_BAD_METADATA',
  REFUSED: 'ERR_REFUSED',
  CONFLICT: 'ERR_CONFLICT',
  CHECKSUM: 'ERR_CHECKSUM',
  PROTOCOL: 'ERR_PROTOCOL',
  VERIFY: 'ERR_VERIFY',
  /** LVM2 meta-data on a device is damaged or of a kind the reader does not know. */
  BAD_LVM: 'ERR_BAD_LVM',
} as const;
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

export class BisyncError extends Error {
  readonly code: ErrorCodeValue;
  /** A next step for the operator, printed by the CLI under the message. */
  readonly hint?: string;
  /** Refused on purpose with nothing changed (the CLI exits 1), though the code is not ERR_REFUSED: a protocol version the other node does not speak. */
  readonly refusal?: boolean;

  constructor(code: ErrorCodeValue, message: string, options?: { hint?: string; cause?: unknown; refusal?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BisyncError';
    this.code = code;
    if (options?.hint) this.hint = options.hint;
    if (options?.refusal) this.refusal = true;
  }
}

/** Shape of errors from the native layer (as Node's SystemError). */
export interface SystemErrorLike extends Error {
  code: string;
  errno: number;
  syscall: string;
  path?: string;
}

export function isSystemError(e: unknown): e is SystemErrorLike {
  return e instanceof Error && typeof (e as SystemErrorLike).errno === 'number' && typeof (e as SystemErrorLike).syscall === 'string';
}

/** Native promise rejections carry no JS stack; re-attach the caller's. */
export async function withStack<T>(p: Promise<T>): Promise<T> {
  const here = new Error();
  try {
    return await p;
  } catch (e) {
    if (e instanceof Error && here.stack) e.stack = `${e.name}: ${e.message}\n${here.stack.split('\n').slice(2).join('\n')}`;
    throw e;
  }
}
