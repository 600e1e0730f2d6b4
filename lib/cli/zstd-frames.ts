/**
 * The frame structure of zstd-compressed input, walked beside the decoder
 * (RFC 8878): where each frame starts and ends, the window its header asks
 * for, its blocks, its content checksum, and skippable frames. It reads no
 * compressed data: the decoder (`fzstd`) does that. Pure code over bytes.
 */

/** Zstandard frame magic (little-endian 0xFD2FB528). */
const MAGIC = 0xfd2fb528;
/** Skippable frames: magics 0x184D2A50 to 0x184D2A5F. */
const SKIPPABLE = 0x184d2a5;
/** Largest block, compressed or regenerated (RFC 8878 §3.1.1.2.3). */
const MAX_BLOCK = 128 << 10;

/** What a frame's header says. */
export interface ZstdFrameHeader {
  /** Offset of the frame in the compressed input. */
  readonly at: number;
  /** Bytes of history the decoder keeps for it: the window, or the content size of a single-segment frame. */
  readonly window: number;
  /** Whether a content checksum (low 32 bits of the content's XXH64) follows its last block. */
  readonly checksum: boolean;
  /** The content size its header declares, or -1 when it declares none. */
  readonly contentSize: number;
}

/** What the walker reports while it walks. */
export interface ZstdFrameEvents {
  /** A zstd frame's header is complete (its bytes so far were given to `data`). */
  start(header: ZstdFrameHeader): void;
  /** `bytes` of the input: of a zstd frame (`frame`), or of a skippable frame (not for a decoder). */
  data(bytes: Uint8Array, frame: boolean): void;
  /** The zstd frame that started last is complete: `checksum` its stored content checksum, or -1 without one. */
  end(checksum: number): void;
}

/** Malformed frame structure, at `offset` of the compressed input. */
export class ZstdFrameError extends Error {
  constructor(
    message: string,
    readonly offset: number,
    /** Well-formed, but asks for what this reader does not give (a dictionary, a larger window). */
    readonly refused = false,
  ) {
    super(message);
  }
}

const enum Part {
  Magic,
  Descriptor,
  HeaderRest,
  BlockHeader,
  BlockBody,
  Checksum,
  SkipSize,
  Skip,
}

/**
 * Walks zstd input given in any pieces ({@link ZstdFrameWalker.walk}), and
 * reports frames to its events; {@link ZstdFrameWalker.finish} at the end of
 * the input refuses a frame cut short.
 */
export class ZstdFrameWalker {
  /** Bytes walked so far. */
  position = 0;
  private part = Part.Magic;
  /** Bytes the current part still needs. */
  private need = 4;
  /** The bytes of a short part (magic, header, block header, checksum, size) collected so far. */
  private readonly small = new Uint8Array(32);
  private have = 0;
  private frameAt = 0;
  private descriptor = 0;
  private lastBlock = false;
  private checksum = false;
  private blockLimit = MAX_BLOCK;

  constructor(
    private readonly events: ZstdFrameEvents,
    /** Largest window accepted (a decoder keeps that much history, per frame). */
    private readonly maxWindow: number,
  ) {}

  /** Walks `bytes` (the next bytes of the input). Throws a {@link ZstdFrameError} on malformed structure. */
  walk(bytes: Uint8Array): void {
    let at = 0;
    while (at < bytes.length) {
      const take = Math.min(this.need, bytes.length - at);
      const piece = bytes.subarray(at, at + take);
      const part = this.part;
      // A frame's header goes to the decoder once complete (after `start`), its blocks and
      // checksum as they come; a skippable frame's bytes go nowhere.
      if (part === Part.BlockHeader || part === Part.BlockBody || part === Part.Checksum) this.events.data(piece, true);
      if (part !== Part.BlockBody && part !== Part.Skip) {
        this.small.set(piece, this.have);
        this.have += take;
      }
      at += take;
      this.position += take;
      this.need -= take;
      if (this.need === 0) this.complete();
    }
  }

  /** The end of the input: throws when it falls inside a frame. */
  finish(): void {
    if (this.part !== Part.Magic || this.have !== 0) throw new ZstdFrameError(`zstd frame at byte ${this.frameAt} is cut short at byte ${this.position}`, this.position);
  }

  /** The current part is complete: on to the next. */
  private complete(): void {
    const s = this.small;
    switch (this.part) {
      case Part.Magic: {
        this.frameAt = this.position - 4;
        const magic = u32(s, 0);
        if (magic === MAGIC) return this.next(Part.Descriptor, 1); // (the header's bytes stay in `small`)
        this.have = 0;
        if (magic >>> 4 === SKIPPABLE) return this.next(Part.SkipSize, 4);
        throw new ZstdFrameError(`no zstd frame at byte ${this.frameAt} (magic ${hex(magic)})`, this.frameAt);
      }
      case Part.Descriptor: {
        const d = (this.descriptor = s[4]!);
        if ((d & 0x08) !== 0) throw new ZstdFrameError(`zstd frame at byte ${this.frameAt} has its reserved header bit set`, this.frameAt + 4);
        const rest = headerLayout(d).rest;
        if (rest > 0) return this.next(Part.HeaderRest, rest);
        return this.startFrame();
      }
      case Part.HeaderRest:
        return this.startFrame();
      case Part.BlockHeader: {
        this.have = 0;
        const v = s[0]! | (s[1]! << 8) | (s[2]! << 16);
        const type = (v >> 1) & 3;
        const size = v >>> 3;
        this.lastBlock = (v & 1) === 1;
        if (type === 3) throw new ZstdFrameError(`zstd block at byte ${this.position - 3} has the reserved block type`, this.position - 3);
        if (size > this.blockLimit) throw new ZstdFrameError(`zstd block at byte ${this.position - 3} is ${size} bytes, over the frame's block limit of ${this.blockLimit}`, this.position - 3);
        const body = type === 1 ? 1 : size; // RLE: one byte repeated
        if (body > 0) return this.next(Part.BlockBody, body);
        return this.blockDone();
      }
      case Part.BlockBody:
        return this.blockDone();
      case Part.Checksum:
        this.have = 0;
        this.next(Part.Magic, 4);
        return this.events.end(u32(s, 0));
      case Part.SkipSize: {
        this.have = 0;
        const size = u32(s, 0);
        if (size > 0) return this.next(Part.Skip, size);
        return this.next(Part.Magic, 4);
      }
      case Part.Skip:
        return this.next(Part.Magic, 4);
    }
  }

  /** The frame header (in `small`) is complete: checked, reported, then given to the decoder. */
  private startFrame(): void {
    const header = this.small.subarray(0, this.have);
    this.have = 0;
    const rest = header.subarray(5);
    const d = this.descriptor;
    const { single, dictBytes, fcsBytes } = headerLayout(d);
    let p = single ? 0 : 1;
    const dict = readLE(rest, p, dictBytes);
    p += dictBytes;
    const size = readLE(rest, p, fcsBytes) + (fcsBytes === 2 ? 256 : 0);
    let window: number;
    if (single) window = size;
    else {
      const wd = rest[0]!;
      const base = 2 ** (10 + (wd >>> 3));
      window = base + (base / 8) * (wd & 7);
    }
    if (dict !== 0) throw new ZstdFrameError(`zstd frame at byte ${this.frameAt} needs dictionary ${dict}, which this reader does not have`, this.frameAt, true);
    if (window > this.maxWindow) {
      throw new ZstdFrameError(
        `zstd frame at byte ${this.frameAt} needs a ${mib(window)} window, over the ${mib(this.maxWindow)} this reader keeps (written with --long or --ultra?); decompress it first, e.g. zstd -dc --long=31 FILE | xbzrle ...`,
        this.frameAt,
        true,
      );
    }
    this.checksum = (d & 0x04) !== 0;
    this.blockLimit = Math.min(MAX_BLOCK, Math.max(window, 1));
    this.events.start({ at: this.frameAt, window, checksum: this.checksum, contentSize: fcsBytes > 0 ? size : -1 });
    this.events.data(header.slice(), true); // (a copy: a decoder may keep a short piece until more comes)
    this.next(Part.BlockHeader, 3);
  }

  private blockDone(): void {
    if (!this.lastBlock) return this.next(Part.BlockHeader, 3);
    if (this.checksum) return this.next(Part.Checksum, 4);
    this.next(Part.Magic, 4);
    this.events.end(-1);
  }

  private next(part: Part, need: number): void {
    this.part = part;
    this.need = need;
  }
}

const DICT_BYTES = [0, 1, 2, 4];

/** What a frame header descriptor `d` says follows it: a single segment (no window descriptor), the dictionary id's and content size's bytes, and `rest`, all of them. */
function headerLayout(d: number): { single: boolean; dictBytes: number; fcsBytes: number; rest: number } {
  const single = (d & 0x20) !== 0;
  const fcsFlag = d >>> 6;
  const dictBytes = DICT_BYTES[d & 3]!;
  const fcsBytes = fcsFlag === 0 ? (single ? 1 : 0) : 1 << fcsFlag;
  return { single, dictBytes, fcsBytes, rest: (single ? 0 : 1) + dictBytes + fcsBytes };
}

function u32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

function readLE(b: Uint8Array, at: number, n: number): number {
  let v = 0;
  for (let i = n - 1; i >= 0; i--) v = v * 256 + b[at + i]!;
  return v;
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

function mib(n: number): string {
  return n >= 1 << 20 ? `${+(n / (1 << 20)).toFixed(1)} MiB` : `${n} bytes`;
}
