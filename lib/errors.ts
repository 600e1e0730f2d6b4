/**
 * The one error class of this library. Every failure caused by *data* (a
 * corrupt delta, a malformed record stream, a record the encoder cannot
 * send) is an `XbzrleError` with a stable string `code`; argument mistakes
 * made by the calling program are `TypeError`/`RangeError`s with Node-style
 * codes (`ERR_INVALID_ARG_TYPE`, `ERR_INVALID_ARG_VALUE`, `ERR_OUT_OF_RANGE`).
 */

/** Stable error codes. Match on these, never on messages. */
export type XbzrleErrorCode =
  /** An XBZRLE delta that QEMU's decoder would reject. */
  | 'ERR_XBZRLE_CORRUPT'
  /** A run longer than 16383 bytes would have to be encoded (QEMU aborts here). */
  | 'ERR_XBZRLE_UNENCODABLE'
  /** The record stream ends inside a record, or without a final EOS. */
  | 'ERR_RAM_TRUNCATED'
  /** A flag combination the format does not define. */
  | 'ERR_RAM_UNKNOWN_FLAGS'
  /** A defined record type this library does not handle (compressed pages, RDMA hooks, multifd flushes). */
  | 'ERR_RAM_UNSUPPORTED'
  /** CONTINUE on the first page record: there is no previous block. */
  | 'ERR_RAM_NO_BLOCK'
  /** A block name that the MEM_SIZE list did not declare. */
  | 'ERR_RAM_UNKNOWN_BLOCK'
  /** A page offset at or beyond the block's length. */
  | 'ERR_RAM_OFFSET'
  /** An XBZRLE record whose encoding byte is not 0x01. */
  | 'ERR_RAM_BAD_ENCODING'
  /** An XBZRLE record whose delta length exceeds the page size. */
  | 'ERR_RAM_LENGTH'
  /** A malformed MEM_SIZE block list. */
  | 'ERR_RAM_MEM_SIZE'
  /** A record handed to the encoder that it cannot send. */
  | 'ERR_INVALID_RECORD'
  /** A resource limit was reached (e.g. `MemoryPageStore`'s `maxMemory`). */
  | 'ERR_LIMIT_EXCEEDED'
  /** Not a QEMU migration stream (no "QEVM" magic). */
  | 'ERR_QEMU_BAD_MAGIC'
  /** A migration stream version other than 3. */
  | 'ERR_QEMU_VERSION'
  /** A migration stream that ends inside an item. */
  | 'ERR_QEMU_TRUNCATED'
  /** A malformed migration container (unknown item type, wrong section footer). */
  | 'ERR_QEMU_CORRUPT'
  /** A migration stream feature this library cannot read (mapped-ram, an unknown configuration subsection, a ram section version other than 4). */
  | 'ERR_QEMU_UNSUPPORTED'
  /** A MEM_SIZE length the target's block cannot take (QEMU's `Size mismatch` / `Size too large`; only with a `target` table). */
  | 'ERR_RAM_SIZE_MISMATCH'
  /** A snapshot delta whose bytes are damaged: a header, frame or trailer checksum mismatch, a malformed record, or a result that does not match the delta's NEW checksum. */
  | 'ERR_DELTA_CORRUPT'
  /** A snapshot delta that ends early (no trailer, or inside the header, a frame or the trailer). */
  | 'ERR_DELTA_TRUNCATED'
  /** OLD is not the image the delta was made from (its size or its content digest differ). */
  | 'ERR_DELTA_WRONG_BASE'
  /** The page size asked for differs from the delta's. */
  | 'ERR_DELTA_PAGE_SIZE'
  /** Not a delta of a format this library reads (bad magic, unknown version or feature). */
  | 'ERR_DELTA_FORMAT';

/** Options of the {@link XbzrleError} constructor. */
export interface XbzrleErrorOptions {
  /** Byte position in the input where the problem was found. */
  offset?: number;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * An error caused by the data being processed.
 *
 * @example
 * ```ts
 * try { decodeXbzrle(delta, page) } catch (err) {
 *   if (err instanceof XbzrleError && err.code === 'ERR_XBZRLE_CORRUPT') console.log(err.offset)
 * }
 * ```
 */
export class XbzrleError extends Error {
  /** Stable machine-readable code. */
  readonly code: XbzrleErrorCode;
  /** Byte position in the input where the problem was found, when it applies. */
  readonly offset: number | undefined;

  constructor(code: XbzrleErrorCode, message: string, options: XbzrleErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'XbzrleError';
    this.code = code;
    this.offset = options.offset;
  }

  /**
   * `instanceof XbzrleError` holds for the errors of every copy of this
   * package in a process — `xbzrle` and `xbzrle/web`, its ESM and CommonJS
   * builds — each having its own class: they carry a shared brand.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // A subclass keeps the ordinary test.
    if (this !== XbzrleError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return value instanceof Error && (value as { [ERROR_BRAND]?: unknown })[ERROR_BRAND] === true;
  }
}

/** The brand every copy's `XbzrleError.prototype` carries (a registered symbol: the same in every bundle). */
const ERROR_BRAND = Symbol.for('xbzrle.XbzrleError');
Object.defineProperty(XbzrleError.prototype, ERROR_BRAND, { value: true });

/** @internal Node-style argument errors. */
export function argTypeError(name: string, expected: string, actual: unknown): TypeError {
  const err = new TypeError(`The "${name}" argument must be ${expected}. Received ${describe(actual)}`);
  (err as TypeError & { code: string }).code = 'ERR_INVALID_ARG_TYPE';
  return err;
}

/** @internal */
export function argRangeError(name: string, expected: string, actual: unknown): RangeError {
  const err = new RangeError(`The value of "${name}" is out of range. It must be ${expected}. Received ${describe(actual)}`);
  (err as RangeError & { code: string }).code = 'ERR_OUT_OF_RANGE';
  return err;
}

/** @internal */
export function argValueError(name: string, reason: string, actual: unknown): TypeError {
  const err = new TypeError(`The argument "${name}" ${reason}. Received ${describe(actual)}`);
  (err as TypeError & { code: string }).code = 'ERR_INVALID_ARG_VALUE';
  return err;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value);
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (typeof value === 'function') return 'a function';
  if (ArrayBuffer.isView(value)) return `an instance of ${value.constructor.name} (length ${(value as Uint8Array).length})`;
  return `an instance of ${(value as object).constructor?.name ?? 'Object'}`;
}
