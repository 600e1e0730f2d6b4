import { argTypeError, XbzrleError } from '../errors.js';
import { decodeBlockName, readU16, readU32, readU64 } from './bytes.js';
import { ENCODING_FLAG_XBZRLE, MAX_IDSTR_LENGTH, RAM_SAVE_FLAG } from './flags.js';
import type { RamBlock } from './record-writer.js';

/** Kinds of record the parser yields. */
export type RamRecordKind = 'mem_size' | 'zero' | 'page' | 'xbzrle' | 'eos';

/**
 * A RAM block of the machine meant to load the stream (QEMU's RAMBlock on the
 * destination), for the checks QEMU's loader makes against its own blocks.
 */
export interface TargetBlock {
  /** Block name (idstr), e.g. `pc.ram`. */
  id: string;
  /** Its current length in bytes (QEMU's `used_length`). */
  length: number;
  /** Most bytes it may grow to (QEMU's `max_length`). Default: `length`. */
  maxLength?: number;
  /** Whether a MEM_SIZE list may change its length (QEMU's RAM_RESIZEABLE). Default: true when `maxLength` > `length`. */
  resizeable?: boolean;
}

/**
 * One parsed record. The parser reuses a single instance: read what you need
 * before the next call to {@link RamRecordParser.next}. Payload bytes are
 * `src[srcOffset .. srcOffset + length)`, a range of the caller's chunk or of
 * the parser's own buffer, valid until that next call.
 */
export class RamRecord {
  /** What the record is. */
  kind: RamRecordKind = 'eos';
  /** Raw flag bits of the header (CONTINUE included). */
  flags = 0;
  /** Stream position of the record's first byte. */
  position = 0;
  /** Block name (page records). */
  block = '';
  /** Page offset inside the block (page records); the total for MEM_SIZE. */
  offset = 0;
  /** Fill byte (ZERO). */
  fill = 0;
  /** Payload holder (PAGE: the page; XBZRLE: the delta). */
  src: Uint8Array = EMPTY;
  /** Payload start in `src`. */
  srcOffset = 0;
  /** Payload length. */
  length = 0;
  /** Stream position of the payload's first byte. */
  dataPosition = 0;
  /** Total record length in bytes (header, name, payload). */
  size = 0;
  /** MEM_SIZE: the block list. */
  blocks: RamBlock[] = [];
}

const EMPTY = new Uint8Array(0);
const PAGE_TYPES = RAM_SAVE_FLAG.ZERO | RAM_SAVE_FLAG.PAGE | RAM_SAVE_FLAG.XBZRLE;
const UNSUPPORTED: Record<number, string> = {
  [RAM_SAVE_FLAG.HOOK]: 'RDMA hook records (0x80) are not supported',
  [RAM_SAVE_FLAG.COMPRESS_PAGE]: 'compressed pages (COMPRESS_PAGE, 0x100) are not supported',
  [RAM_SAVE_FLAG.MULTIFD_FLUSH]: 'multifd flush records (0x200) are not accepted',
};

/** Default cap on blocks in MEM_SIZE lists (QEMU machines have tens). */
export const DEFAULT_MAX_BLOCKS = 4096;

/** Default cap on the memory a stream may describe: 16 TiB (MEM_SIZE total, or page offsets without one). */
export const DEFAULT_MAX_IMAGE_SIZE = 2 ** 44;

/** Options of {@link RamRecordParser}. */
export interface RamRecordParserOptions {
  /** Page size of the stream (1 KiB to 16 KiB, a power of two). */
  pageSize: number;
  /** Most blocks a MEM_SIZE list may declare in all. Default 4096. */
  maxBlocks?: number;
  /**
   * Most bytes of memory the stream may describe: the MEM_SIZE total (checked
   * before anything is allocated), or, without a MEM_SIZE list, the end of any
   * page. Default 16 TiB. Beyond it: `ERR_LIMIT_EXCEEDED`.
   */
  maxImageSize?: number;
  /**
   * The stream was advised for postcopy (its source had postcopy-ram on):
   * MEM_SIZE entries may carry a page-size field. Default false.
   */
  postcopy?: boolean;
  /** The x-ignore-shared capability was on: MEM_SIZE entries carry a guest address. Default false. */
  ignoreShared?: boolean;
  /**
   * Accept MULTIFD_FLUSH records (0x200), counted in `multifdFlushes` and
   * otherwise skipped (never yielded), as QEMU ≥ 8.1 does (it ignores them when multifd is off; QEMU 8.1 writes
   * them in every stream of a machine type ≥ 8.1). Default false: they fail
   * with `ERR_RAM_UNSUPPORTED`, as in QEMU ≤ 8.0.
   */
  allowMultifdFlush?: boolean;
  /**
   * The blocks of the machine meant to load the stream. When given, the
   * checks QEMU's loader makes against its own blocks are made against these,
   * with QEMU's messages: a MEM_SIZE entry for a block it lacks (`Unknown
   * ramblock`), a MEM_SIZE length (rounded up to the page size) that differs
   * from a fixed block's (`Size mismatch`) or exceeds a resizeable block's
   * `maxLength` (`Size too large`), a page record for a block it lacks
   * (`Can't find block`) or at or past the block's current length (`Illegal
   * RAM offset`), MEM_SIZE or not. Default: none (only the stream's own
   * MEM_SIZE list is checked against).
   */
  target?: readonly TargetBlock[];
}

/** @internal Validates a target table (option `name`); returns a copy keyed by id with current lengths. */
export function checkTarget(value: unknown, name = 'options.target'): Map<string, { length: number; maxLength: number; resizeable: boolean }> {
  const fail = (why: string, actual: unknown): never => {
    const err = new TypeError(`The "${name}" option ${why}. Received ${typeof actual === 'object' ? JSON.stringify(actual)?.slice(0, 80) : String(actual)}`);
    (err as TypeError & { code: string }).code = 'ERR_INVALID_ARG_VALUE';
    throw err;
  };
  if (!Array.isArray(value)) fail('must be an array of { id, length, maxLength?, resizeable? }', value);
  const out = new Map<string, { length: number; maxLength: number; resizeable: boolean }>();
  for (const b of value as unknown[]) {
    if (b === null || typeof b !== 'object') fail('must hold block objects', b);
    const { id, length, maxLength, resizeable } = b as Partial<TargetBlock>;
    if (typeof id !== 'string' || id.length === 0 || new TextEncoder().encode(id).length > MAX_IDSTR_LENGTH) fail('needs an id of 1 to 255 bytes in every block', b);
    if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0) fail(`needs a length (a non-negative integer) for block ${JSON.stringify(id)}`, b);
    if (maxLength !== undefined && (typeof maxLength !== 'number' || !Number.isSafeInteger(maxLength) || maxLength < length!)) {
      fail(`has a maxLength below the length of block ${JSON.stringify(id)}`, b);
    }
    if (resizeable !== undefined && typeof resizeable !== 'boolean') fail(`has a non-boolean resizeable for block ${JSON.stringify(id)}`, b);
    if (out.has(id!)) fail(`lists block ${JSON.stringify(id)} twice`, b);
    const max = maxLength ?? length!;
    out.set(id!, { length: length!, maxLength: max, resizeable: resizeable ?? max > length! });
  }
  return out;
}

const hex = (n: number): string => '0x' + n.toString(16);

/**
 * Incremental parser of a QEMU RAM record stream (spec: ram-stream.md).
 *
 * Push-then-pull: hand it a chunk with {@link RamRecordParser.push}, then
 * call {@link RamRecordParser.next} until it returns `null` (the chunk is used
 * up), then push the next chunk. Input may be split anywhere: a record cut by
 * a chunk boundary is completed in a small internal buffer (at most one
 * record, about a page), every other record is read in place.
 *
 * Each record gets the receiver's checks in QEMU's order (§7): block
 * resolution (CONTINUE without a previous block, unknown name once a MEM_SIZE
 * list is known), offset within the block, then the flag dispatch and the
 * XBZRLE encoding byte and length. The block of the last page record is kept
 * across EOS, as CONTINUE carries across sections. Errors are thrown as
 * {@link XbzrleError}s whose `offset` is a stream position.
 */
export class RamRecordParser {
  /** Stream bytes consumed by completed records. */
  position = 0;
  /** The block list from MEM_SIZE records (merged), or null before the first. */
  knownBlocks: Map<string, number> | null = null;
  /** True when the last complete record was an EOS. */
  atEos = false;
  /** MULTIFD_FLUSH records skipped (with `allowMultifdFlush`). */
  multifdFlushes = 0;
  /** Stream position of the first MULTIFD_FLUSH record skipped, or -1. */
  firstMultifdFlush = -1;

  private readonly pageSize: number;
  private readonly mask: number;
  private readonly maxBlocks: number;
  private readonly maxImageSize: number;
  private readonly postcopy: boolean;
  private readonly ignoreShared: boolean;
  private readonly allowFlush: boolean;
  /** The target's blocks and their current lengths (MEM_SIZE may resize them), or null. */
  private readonly target: Map<string, { length: number; maxLength: number; resizeable: boolean }> | null;
  private readonly record = new RamRecord();
  private lastBlock: string | null = null;
  private chunk: Uint8Array = EMPTY;
  private pos = 0;
  private readonly stash: Uint8Array;
  private stashLen = 0;
  // MEM_SIZE list in progress: bytes of the total still to account for.
  private memRemaining = -1;
  private memTotal = 0;
  private memPosition = 0;
  private memList: RamBlock[] = [];

  constructor(options: RamRecordParserOptions) {
    this.pageSize = options.pageSize;
    this.mask = options.pageSize - 1;
    this.maxBlocks = options.maxBlocks ?? DEFAULT_MAX_BLOCKS;
    this.maxImageSize = options.maxImageSize ?? DEFAULT_MAX_IMAGE_SIZE;
    this.postcopy = options.postcopy ?? false;
    this.ignoreShared = options.ignoreShared ?? false;
    if (options.allowMultifdFlush !== undefined && typeof options.allowMultifdFlush !== 'boolean') {
      throw argTypeError('options.allowMultifdFlush', 'a boolean', options.allowMultifdFlush);
    }
    this.allowFlush = options.allowMultifdFlush ?? false;
    this.target = options.target === undefined ? null : checkTarget(options.target);
    if (this.postcopy && this.ignoreShared) {
      // Both optional fields start with a zero byte: the entries cannot be told apart.
      throw new XbzrleError('ERR_RAM_UNSUPPORTED', 'MEM_SIZE lists with both postcopy page sizes and x-ignore-shared addresses cannot be parsed unambiguously');
    }
    this.stash = new Uint8Array(8 + 1 + MAX_IDSTR_LENGTH + 3 + options.pageSize);
  }

  /** Bytes pushed but not yet consumed by a complete record. */
  get buffered(): number {
    return this.stashLen + (this.chunk.length - this.pos);
  }

  /** The block of the last page record (what CONTINUE refers to). */
  get currentBlock(): string | null {
    return this.lastBlock;
  }

  /**
   * Takes back the unread rest of the current chunk, for a caller that reads
   * what follows the records itself (a migration file's section footer). Only
   * valid right after a record was returned.
   */
  takeRemainder(): Uint8Array {
    if (this.stashLen > 0) throw new Error('RamRecordParser.takeRemainder: inside a record');
    const rest = this.chunk.subarray(this.pos);
    this.chunk = EMPTY;
    this.pos = 0;
    return rest;
  }

  /** Supplies the next chunk. The previous one must be used up (`next()` returned null). */
  push(chunk: Uint8Array): void {
    if (this.pos < this.chunk.length) throw new Error('RamRecordParser.push: previous chunk not consumed');
    this.chunk = chunk;
    this.pos = 0;
  }

  /**
   * The next complete record, or null when more input is needed.
   * @throws XbzrleError on malformed input (the parser is then unusable)
   */
  next(): RamRecord | null {
    for (;;) {
      if (this.stashLen > 0) {
        const r = this.unit(this.stash, 0, this.stashLen);
        if (r < 0) {
          const want = -r - this.stashLen;
          const take = Math.min(want, this.chunk.length - this.pos);
          this.stash.set(this.chunk.subarray(this.pos, this.pos + take), this.stashLen);
          this.stashLen += take;
          this.pos += take;
          if (take < want) return null;
          continue;
        }
        this.stashLen = 0;
        this.position += r;
        if (this.record.size > 0) return this.record;
        continue;
      }
      const avail = this.chunk.length - this.pos;
      if (avail === 0) return null;
      const r = this.unit(this.chunk, this.pos, avail);
      if (r < 0) {
        this.stash.set(this.chunk.subarray(this.pos), 0);
        this.stashLen = avail;
        this.pos = this.chunk.length;
        return null;
      }
      this.pos += r;
      this.position += r;
      if (this.record.size > 0) return this.record;
    }
  }

  /**
   * Declares the end of input.
   * @throws XbzrleError `ERR_RAM_TRUNCATED` when the input ends inside a
   *   record or after a complete record that is not an EOS
   */
  end(): void {
    if (this.buffered > 0 || this.memRemaining >= 0) {
      const at = this.memRemaining >= 0 ? this.memPosition : this.position;
      throw new XbzrleError(
        'ERR_RAM_TRUNCATED',
        `stream ends inside the record at byte ${at} (${this.position + this.buffered - at} bytes of it present)`,
        { offset: at },
      );
    }
    if (!this.atEos) {
      throw new XbzrleError(
        'ERR_RAM_TRUNCATED',
        this.position === 0 ? 'stream is empty: a RAM record stream ends with an EOS record' : `stream ends at byte ${this.position} without a final EOS record`,
        { offset: this.position },
      );
    }
  }

  /**
   * Tries to read one unit (a record, or one entry of a MEM_SIZE list) at
   * `b[p]` with `avail` bytes present. Returns the bytes consumed, with
   * `record.size > 0` when a record is complete; or `-need` when `need` bytes
   * are required. Has no side effect unless it completes.
   */
  private unit(b: Uint8Array, p: number, avail: number): number {
    this.record.size = 0;
    if (this.memRemaining >= 0) return this.memEntry(b, p, avail);
    if (avail < 8) return -8;
    const at = this.position;
    const hi = readU32(b, p);
    const lo = readU32(b, p + 4);
    const flags = lo & this.mask;
    const offset = hi * 2 ** 32 + (lo - flags);
    const rec = this.record;
    let q = 8;
    let block = this.lastBlock;

    // QEMU 7.2 rejects compressed pages (compression off) before anything else.
    if ((flags & RAM_SAVE_FLAG.COMPRESS_PAGE) !== 0) {
      throw new XbzrleError('ERR_RAM_UNSUPPORTED', `record at byte ${at}: ${UNSUPPORTED[RAM_SAVE_FLAG.COMPRESS_PAGE]}`, { offset: at });
    }
    if ((flags & PAGE_TYPES) !== 0) {
      const target = this.target;
      if ((flags & RAM_SAVE_FLAG.CONTINUE) !== 0) {
        if (block === null) {
          throw new XbzrleError('ERR_RAM_NO_BLOCK', `record at byte ${at} has CONTINUE set but no block was named before it`, { offset: at });
        }
        // Named before a MEM_SIZE list that left it out.
        if (target === null && this.knownBlocks !== null && !this.knownBlocks.has(block)) {
          throw new XbzrleError('ERR_RAM_UNKNOWN_BLOCK', `record at byte ${at} continues block ${JSON.stringify(block)}, which the MEM_SIZE list does not declare`, { offset: at });
        }
      } else {
        if (avail < 9) return -9;
        const len = b[p + 8]!;
        if (avail < 9 + len) return -(9 + len);
        block = decodeBlockName(b, p + 9, len);
        if (block === null || len === 0) {
          throw new XbzrleError('ERR_RAM_UNKNOWN_BLOCK', `record at byte ${at} names a block that is ${len === 0 ? 'empty' : 'not valid UTF-8'}`, { offset: at + 8 });
        }
        if (target === null && this.knownBlocks !== null && !this.knownBlocks.has(block)) {
          throw new XbzrleError('ERR_RAM_UNKNOWN_BLOCK', `record at byte ${at} names block ${JSON.stringify(block)}, which the MEM_SIZE list does not declare`, { offset: at + 8 });
        }
        q = 9 + len;
      }
      if (target !== null) {
        // QEMU's loader: the block must exist on the target, the page lie inside its current length.
        const t = target.get(block);
        if (t === undefined) {
          throw new XbzrleError('ERR_RAM_UNKNOWN_BLOCK', `record at byte ${at}: Can't find block ${block} (the target has no such block)`, { offset: at });
        }
        if (hi >= 0x200000 || offset >= t.length) {
          throw new XbzrleError('ERR_RAM_OFFSET', `record at byte ${at}: Illegal RAM offset ${offset.toString(16)} (past the end of block ${JSON.stringify(block)} on the target, ${hex(t.length)} bytes)`, { offset: at });
        }
      }
      const limit = this.knownBlocks === null || target !== null ? 2 ** 53 : this.knownBlocks.get(block)!; // declared: checked above
      if (hi >= 0x200000 || offset >= limit) {
        throw new XbzrleError('ERR_RAM_OFFSET', `record at byte ${at} has offset ${offset} beyond block ${JSON.stringify(block)} (${limit} bytes)`, { offset: at });
      }
      if (this.knownBlocks === null && offset + this.pageSize > this.maxImageSize) {
        throw new XbzrleError('ERR_LIMIT_EXCEEDED', `record at byte ${at} has offset ${offset}, past the maxImageSize limit of ${this.maxImageSize} bytes`, { offset: at });
      }
    }

    rec.flags = flags;
    rec.position = at;
    switch (flags & ~RAM_SAVE_FLAG.CONTINUE) {
      case RAM_SAVE_FLAG.ZERO: {
        if (avail < q + 1) return -(q + 1);
        rec.fill = b[p + q]!;
        return this.pageRecord('zero', block!, offset, b, p, q + 1, q + 1, 0);
      }
      case RAM_SAVE_FLAG.PAGE: {
        const need = q + this.pageSize;
        if (avail < need) return -need;
        return this.pageRecord('page', block!, offset, b, p, need, q, this.pageSize);
      }
      case RAM_SAVE_FLAG.XBZRLE: {
        if (avail < q + 3) return -(q + 3);
        const enc = b[p + q]!;
        if (enc !== ENCODING_FLAG_XBZRLE) {
          throw new XbzrleError('ERR_RAM_BAD_ENCODING', `XBZRLE record at byte ${at} has encoding byte 0x${enc.toString(16).padStart(2, '0')}, not 0x01`, { offset: at + q });
        }
        const len = readU16(b, p + q + 1);
        if (len > this.pageSize) {
          throw new XbzrleError('ERR_RAM_LENGTH', `XBZRLE record at byte ${at} has delta length ${len}, over the page size ${this.pageSize}`, { offset: at + q + 1 });
        }
        const need = q + 3 + len;
        if (avail < need) return -need;
        return this.pageRecord('xbzrle', block!, offset, b, p, need, q + 3, len);
      }
      case RAM_SAVE_FLAG.MEM_SIZE: {
        if (hi >= 0x200000) {
          throw new XbzrleError('ERR_LIMIT_EXCEEDED', `MEM_SIZE record at byte ${at} declares a total of 2^53 bytes or more`, { offset: at });
        }
        if (offset > this.maxImageSize) {
          throw new XbzrleError('ERR_LIMIT_EXCEEDED', `MEM_SIZE record at byte ${at} declares ${offset} bytes of memory, over the maxImageSize limit of ${this.maxImageSize}`, { offset: at });
        }
        this.atEos = false;
        this.memTotal = offset;
        this.memRemaining = offset;
        this.memPosition = at;
        this.memList = [];
        if (offset === 0) return this.finishMemSize(b, p, 8);
        return 8;
      }
      case RAM_SAVE_FLAG.EOS: {
        rec.kind = 'eos';
        rec.size = 8;
        this.atEos = true;
        return 8;
      }
      case RAM_SAVE_FLAG.MULTIFD_FLUSH: {
        if (!this.allowFlush) {
          throw new XbzrleError('ERR_RAM_UNSUPPORTED', `record at byte ${at}: ${UNSUPPORTED[RAM_SAVE_FLAG.MULTIFD_FLUSH]} (QEMU ≥ 8.1 ignores them without multifd: allow them with allowMultifdFlush)`, { offset: at });
        }
        // Consumed, not yielded: record.size stays 0.
        if (this.multifdFlushes++ === 0) this.firstMultifdFlush = at;
        this.atEos = false;
        return 8;
      }
      default: {
        const what = UNSUPPORTED[flags & ~RAM_SAVE_FLAG.CONTINUE];
        if (what !== undefined) throw new XbzrleError('ERR_RAM_UNSUPPORTED', `record at byte ${at}: ${what}`, { offset: at });
        throw new XbzrleError('ERR_RAM_UNKNOWN_FLAGS', `record at byte ${at} has an unknown combination of flags 0x${flags.toString(16)}`, { offset: at });
      }
    }
  }

  /**
   * @internal QEMU's loader checks of one MEM_SIZE entry against the target
   * (none without one): the block must exist (`Unknown ramblock`); with
   * `sizes`, the length rounded up to the page size must be the block's
   * (`Size mismatch`) unless it is resizeable and the length fits its
   * `maxLength` (`Size too large`), and then becomes its length. The mapped-ram
   * reader calls it too. Throws at `at`, naming `where`.
   */
  targetMemSize(id: string, length: number, at: number, sizes: boolean, where: string): void {
    const t = this.target?.get(id);
    if (this.target === null) return;
    if (t === undefined) {
      throw new XbzrleError('ERR_RAM_UNKNOWN_BLOCK', `${where}: Unknown ramblock "${id}", cannot accept migration (the target has no such block)`, { offset: at });
    }
    if (!sizes) return;
    const aligned = Math.ceil(length / this.pageSize) * this.pageSize;
    if (aligned === t.length) return;
    if (!t.resizeable) {
      throw new XbzrleError('ERR_RAM_SIZE_MISMATCH', `${where}: Size mismatch: ${id}: ${hex(aligned)} != ${hex(t.length)} (the target's block is not resizeable)`, { offset: at });
    }
    if (aligned > t.maxLength) {
      throw new XbzrleError('ERR_RAM_SIZE_MISMATCH', `${where}: Size too large: ${id}: ${hex(aligned)} > ${hex(t.maxLength)} (the target's maxLength)`, { offset: at });
    }
    t.length = aligned;
  }

  /** @internal The target's current length of `id`: undefined without a target or for a block it lacks. */
  targetLength(id: string): number | undefined {
    return this.target?.get(id)?.length;
  }

  /** @internal True when a target table was given. */
  get hasTarget(): boolean {
    return this.target !== null;
  }

  private pageRecord(kind: RamRecordKind, block: string, offset: number, b: Uint8Array, p: number, size: number, dataAt: number, length: number): number {
    const rec = this.record;
    rec.kind = kind;
    rec.block = block;
    rec.offset = offset;
    rec.src = b;
    rec.srcOffset = p + dataAt;
    rec.length = length;
    rec.dataPosition = rec.position + dataAt;
    rec.size = size;
    this.lastBlock = block;
    this.atEos = false;
    return size;
  }

  /**
   * One entry of a MEM_SIZE list: `u8 len, idstr, be64 length`, then the
   * optional fields of ram-stream.md §4.2 (a be64 page size with postcopy, a
   * be64 guest address with x-ignore-shared).
   */
  private memEntry(b: Uint8Array, p: number, avail: number): number {
    const at = this.position;
    if (avail < 1) return -1;
    const len = b[p]!;
    let need = 1 + len + 8;
    if (avail < need) return -need;
    const name = decodeBlockName(b, p + 1, len);
    const length = readU64(b, p + 1 + len);
    const bad = (why: string): never => {
      throw new XbzrleError('ERR_RAM_MEM_SIZE', `MEM_SIZE list at byte ${this.memPosition}, entry at byte ${at}: ${why}`, { offset: at });
    };
    if (len === 0) bad('empty block name');
    if (name === null) return bad('block name is not valid UTF-8');
    const id = name;
    if (length < 0 || length > this.memRemaining) bad(`block ${JSON.stringify(id)} is longer than the ${this.memRemaining} bytes left of the total`);
    if (length === 0) bad(`block ${JSON.stringify(id)} has length 0`);
    if (this.memList.some((e) => e.id === id)) bad(`block ${JSON.stringify(id)} is listed twice`);
    const known = this.knownBlocks?.size ?? 0;
    if (this.memList.length + 1 + known > this.maxBlocks && !this.knownBlocks?.has(id)) {
      throw new XbzrleError('ERR_LIMIT_EXCEEDED', `MEM_SIZE list at byte ${this.memPosition} declares more than the maxBlocks limit of ${this.maxBlocks} blocks`, { offset: at });
    }
    if (this.target !== null) this.targetMemSize(id, length, at, true, `MEM_SIZE list at byte ${this.memPosition}, entry at byte ${at}`);
    const entry: RamBlock = { id, length };
    if (this.postcopy) {
      // The page-size field is only there for blocks whose page size differs from
      // the host's, which the stream does not say. It is recognisable: before
      // another entry its first byte is 0 (a name is never empty); after the last
      // entry it is a power of two without flag bits (no record header is).
      const last = length === this.memRemaining;
      if (avail < need + (last ? 8 : 1)) return -(need + (last ? 8 : 1));
      const v = last ? readU64(b, p + need) : b[p + need]!;
      if (last ? v >= 1024 && (v & (v - 1)) === 0 && (v & this.mask) === 0 && Number.isSafeInteger(v) : v === 0) {
        if (avail < need + 8) return -(need + 8);
        entry.pageSize = readU64(b, p + need);
        need += 8;
      }
    }
    if (this.ignoreShared) {
      if (avail < need + 8) return -(need + 8);
      entry.address = readU64(b, p + need);
      need += 8;
    }
    this.memList.push(entry);
    this.memRemaining -= length;
    if (this.memRemaining === 0) return this.finishMemSize(b, p, need);
    return need;
  }

  private finishMemSize(b: Uint8Array, p: number, consumed: number): number {
    const rec = this.record;
    rec.kind = 'mem_size';
    rec.flags = RAM_SAVE_FLAG.MEM_SIZE;
    rec.position = this.memPosition;
    rec.offset = this.memTotal;
    rec.blocks = this.memList;
    rec.src = b;
    rec.srcOffset = p;
    rec.length = 0;
    rec.size = this.position + consumed - this.memPosition;
    const known = new Map(this.knownBlocks ?? []);
    for (const e of this.memList) known.set(e.id, e.length);
    let total = 0;
    for (const length of known.values()) total += length;
    if (total > this.maxImageSize) {
      // Several MEM_SIZE lists together: the blocks they declare, merged.
      throw new XbzrleError('ERR_LIMIT_EXCEEDED', `MEM_SIZE lists up to byte ${this.memPosition} declare ${total} bytes of memory, over the maxImageSize limit of ${this.maxImageSize}`, { offset: this.memPosition });
    }
    this.knownBlocks = known;
    this.memRemaining = -1;
    this.memList = [];
    return consumed;
  }
}
