import { encodeXbzrle } from '../codec/encode.js';
import { argRangeError, XbzrleError } from '../errors.js';
import { DEFAULT_MAX_BLOCKS, type RamRecord } from '../format/record-parser.js';
import type { RamBlock } from '../format/record-writer.js';
import { RECORD_HEADER_BYTES, type RecordCounts } from '../stats.js';
import type { MemoryPageStore } from '../store/memory-page-store.js';
import { CELL_KIND, CELL_KINDS, cellCode, mergeInSpace, mergeInTime } from './cells.js';

/** Upper bounds of the XBZRLE delta size histogram buckets (as `xbzrle stat` prints them). */
export const DELTA_SIZE_EDGES: readonly number[] = [0, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];

/** Index of the delta size bucket of `length`. */
export function deltaSizeBucket(length: number): number {
  let i = 0;
  while (i < DELTA_SIZE_EDGES.length - 1 && length > DELTA_SIZE_EDGES[i]!) i++;
  return i;
}

/** What one round (the records up to and including an EOS) carried. */
export interface RoundStats {
  /** 1-based round number (the first, when successive rounds were merged: see `maxRounds`). */
  round: number;
  /** Last round counted here: `round` unless successive rounds were merged. */
  lastRound: number;
  /** Stream position of the round's first record. */
  position: number;
  /** Bytes of the round's records (headers, names, payloads; MEM_SIZE and EOS included). */
  bytes: number;
  /** Records by kind. */
  records: RecordCounts;
  /** Bytes of the records of each {@link CELL_KIND} (index = kind; NONE holds MEM_SIZE and EOS). */
  bytesByKind: number[];
  /** PAGE records for pages the stream had not sent before. */
  newPages: number;
  /** PAGE records inferred to be cache misses (see {@link CELL_KIND}). */
  cacheMiss: number;
  /** PAGE records inferred to be XBZRLE overflows. */
  overflow: number;
  /** PAGE records for pages sent before, unclassified (page contents were not kept). */
  resent: number;
  /** Σ over XBZRLE records of (record length − 8), as QEMU's `xbzrle-cache.bytes` counts them. */
  xbzrleBytes: number;
  /**
   * QEMU's encoding rate over the round: (XBZRLE records + overflows) × page
   * size / (xbzrleBytes + page size × overflows); null without either.
   */
  encodingRate: number | null;
  /** (cache misses + unclassified resends) / page records of the round; null without page records. */
  cacheMissRate: number | null;
}

/** One page map: a block's cells over one round, or over several merged ones. */
export interface MapFrame {
  /** First round of the frame. */
  firstRound: number;
  /** Last round of the frame. */
  lastRound: number;
  /** Rounds merged into it that sent pages of the block. */
  rounds: number;
  /** One code per cell (see `cells.ts`); `cells` long. */
  codes: Uint8Array;
}

/** A RAM block's page maps. */
export interface BlockMap {
  /** Block name. */
  id: string;
  /** Length in bytes: from MEM_SIZE, or (`declared: false`) up to the highest page the stream sent. */
  length: number;
  /** True when a MEM_SIZE record declared the block. */
  declared: boolean;
  /** Pages of the block. */
  pages: number;
  /** Pages per cell (a power of two). */
  pagesPerCell: number;
  /** Cells per map: ⌈pages / pagesPerCell⌉. */
  cells: number;
  /** Rounds merged into each frame at most (1 unless there were more rounds than frames allowed). */
  roundsPerFrame: number;
  /** Maps, oldest first, for the rounds that sent pages of the block. */
  frames: MapFrame[];
  /** Per cell: rounds in which it was sent (saturating at 65535). */
  roundsSent: Uint16Array;
  /** Per cell: bytes of records sent for it, all rounds. */
  bytesSent: Float64Array;
  /** Page records of the block, all rounds. */
  records: number;
}

/** Limits of the collector. */
export interface CollectorLimits {
  /** Most cells in one map, rounded down to a power of two (pages are grouped by powers of two beyond it). */
  maxCellsPerMap: number;
  /** Most maps kept per block (successive rounds are merged pairwise beyond it). */
  maxMapsPerBlock: number;
  /** Most cells kept in all maps together (the blocks with the most are merged first). */
  maxMapCells: number;
  /** Most per-round entries kept (successive rounds are merged pairwise beyond it). */
  maxRounds: number;
}

/** Default {@link CollectorLimits}. */
export const DEFAULT_COLLECTOR_LIMITS: Readonly<CollectorLimits> = Object.freeze({ maxCellsPerMap: 8192, maxMapsPerBlock: 64, maxMapCells: 1 << 21, maxRounds: 8192 });

/** Smallest cell count the limits may cut a map down to. */
const MIN_CELLS = 64;

/** Pages per segment of the "sent before" bits (8 KiB of bits, allocated on first use). */
const SEGMENT_PAGES = 1 << 16;
/** Cells a block without MEM_SIZE starts with (its arrays grow up to the map limit). */
const FIRST_CELLS = 64;

class BlockState {
  length: number;
  declared: boolean;
  pages: number;
  shift: number;
  /** Cells allocated in every per-cell array. */
  capacity: number;
  /** Bit per page, "sent before", in segments allocated on first use. */
  private readonly bits: (Uint8Array | undefined)[] = [];
  /** Bytes per (cell, kind) in the current round. */
  acc: Float64Array;
  touched = false;
  frames: MapFrame[] = [];
  roundsPerFrame = 1;
  roundsSent: Uint16Array;
  bytesSent: Float64Array;
  records = 0;

  constructor(
    readonly id: string,
    length: number,
    declared: boolean,
    readonly pageSize: number,
    private readonly maxCells: number,
  ) {
    this.length = length;
    this.declared = declared;
    this.pages = Math.ceil(length / pageSize);
    let shift = 0;
    if (declared) while (Math.ceil(this.pages / 2 ** shift) > maxCells) shift++;
    this.shift = shift;
    this.capacity = declared ? Math.max(1, Math.ceil(this.pages / 2 ** shift)) : Math.min(FIRST_CELLS, maxCells);
    this.acc = new Float64Array(this.capacity * CELL_KINDS);
    this.roundsSent = new Uint16Array(this.capacity);
    this.bytesSent = new Float64Array(this.capacity);
  }

  get cells(): number {
    return Math.max(1, Math.ceil(this.pages / 2 ** this.shift));
  }

  /** Marks page `index` sent; true when it was already. */
  sentBefore(index: number): boolean {
    const seg = Math.floor(index / SEGMENT_PAGES);
    let bits = this.bits[seg];
    if (bits === undefined) this.bits[seg] = bits = new Uint8Array(SEGMENT_PAGES / 8);
    const at = index % SEGMENT_PAGES;
    const bit = 1 << (at & 7);
    const before = (bits[at >>> 3]! & bit) !== 0;
    bits[at >>> 3]! |= bit;
    return before;
  }

  /**
   * A block reaching page `index` (one without MEM_SIZE, or declared after its
   * first pages): its arrays grow up to the map limit, then cells are grouped
   * pairwise. Returns the map cells added to the frames.
   */
  reach(index: number): number {
    if (index < this.pages) return 0;
    this.pages = index + 1;
    this.length = Math.max(this.length, this.pages * this.pageSize);
    let added = 0;
    const needed = Math.ceil(this.pages / 2 ** this.shift);
    if (needed > this.capacity && this.capacity < this.maxCells) {
      let capacity = this.capacity;
      while (capacity < needed && capacity < this.maxCells) capacity *= 2;
      capacity = Math.min(capacity, this.maxCells);
      added = (capacity - this.capacity) * this.frames.length;
      this.grow(capacity);
    }
    while (Math.ceil(this.pages / 2 ** this.shift) > this.capacity) this.halve();
    return added;
  }

  private grow(capacity: number): void {
    const acc = new Float64Array(capacity * CELL_KINDS);
    acc.set(this.acc);
    this.acc = acc;
    const rounds = new Uint16Array(capacity);
    rounds.set(this.roundsSent);
    this.roundsSent = rounds;
    const bytes = new Float64Array(capacity);
    bytes.set(this.bytesSent);
    this.bytesSent = bytes;
    for (const f of this.frames) {
      const codes = new Uint8Array(capacity);
      codes.set(f.codes);
      f.codes = codes;
    }
    this.capacity = capacity;
  }

  /** Groups cells pairwise (pages per cell doubles) in every array and frame. */
  private halve(): void {
    const n = this.capacity;
    const half = n >> 1;
    for (const f of this.frames) {
      const c = f.codes;
      for (let j = 0; j < half; j++) c[j] = mergeInSpace(c[2 * j]!, c[2 * j + 1]!);
      c.fill(0, half);
    }
    const acc = this.acc;
    for (let j = 0; j < half; j++) {
      for (let k = 0; k < CELL_KINDS; k++) acc[j * CELL_KINDS + k] = acc[2 * j * CELL_KINDS + k]! + acc[(2 * j + 1) * CELL_KINDS + k]!;
    }
    acc.fill(0, half * CELL_KINDS);
    for (let j = 0; j < half; j++) {
      this.roundsSent[j] = Math.max(this.roundsSent[2 * j]!, this.roundsSent[2 * j + 1]!);
      this.bytesSent[j] = this.bytesSent[2 * j]! + this.bytesSent[2 * j + 1]!;
    }
    this.roundsSent.fill(0, half);
    this.bytesSent.fill(0, half);
    this.shift++;
  }

  /** Pages in cell `cell`. */
  pagesIn(cell: number): number {
    const per = 2 ** this.shift;
    return Math.max(1, Math.min(per, this.pages - cell * per));
  }

  /** Closes the round for this block: one more frame (or merged into the last one). */
  endRound(round: number): number {
    const cells = this.cells;
    const codes = new Uint8Array(this.capacity);
    const acc = this.acc;
    for (let c = 0; c < cells; c++) {
      let total = 0;
      let best = 0;
      let bestBytes = 0;
      const base = c * CELL_KINDS;
      for (let k = 1; k < CELL_KINDS; k++) {
        const b = acc[base + k]!;
        total += b;
        if (b > bestBytes || (b === bestBytes && b > 0)) {
          best = k;
          bestBytes = b;
        }
      }
      if (total === 0) continue;
      codes[c] = cellCode(best, total / this.pagesIn(c));
      if (this.roundsSent[c]! < 0xffff) this.roundsSent[c]!++;
      this.bytesSent[c]! += total;
    }
    acc.fill(0, 0, cells * CELL_KINDS);
    this.touched = false;
    const last = this.frames[this.frames.length - 1];
    if (last !== undefined && round - last.firstRound < this.roundsPerFrame) {
      const c = last.codes;
      for (let j = 0; j < cells; j++) c[j] = mergeInTime(c[j]!, codes[j]!);
      last.lastRound = round;
      last.rounds++;
      return 0;
    }
    this.frames.push({ firstRound: round, lastRound: round, rounds: 1, codes });
    return this.capacity;
  }

  /** Merges successive frames pairwise; returns the cells freed. */
  compact(): number {
    const frames = this.frames;
    const out: MapFrame[] = [];
    let freed = 0;
    for (let i = 0; i < frames.length; i += 2) {
      const a = frames[i]!;
      const b = frames[i + 1];
      if (b !== undefined) {
        const c = a.codes;
        for (let j = 0; j < c.length; j++) c[j] = mergeInTime(c[j]!, b.codes[j]!);
        a.lastRound = b.lastRound;
        a.rounds += b.rounds;
        freed += b.codes.length;
      }
      out.push(a);
    }
    this.frames = out;
    this.roundsPerFrame *= 2;
    return freed;
  }
}

/** Two successive entries of {@link RoundStats} as one: counts added, rates recomputed. */
export function mergeRounds(a: RoundStats, b: RoundStats, pageSize: number): RoundStats {
  const m: RoundStats = {
    ...a,
    lastRound: b.lastRound,
    bytes: a.bytes + b.bytes,
    records: { ...a.records },
    bytesByKind: a.bytesByKind.map((v, i) => v + (b.bytesByKind[i] ?? 0)),
    newPages: a.newPages + b.newPages,
    cacheMiss: a.cacheMiss + b.cacheMiss,
    overflow: a.overflow + b.overflow,
    resent: a.resent + b.resent,
    xbzrleBytes: a.xbzrleBytes + b.xbzrleBytes,
  };
  for (const k of ['PAGE', 'ZERO', 'XBZRLE', 'MEM_SIZE', 'EOS'] as const) m.records[k] += b.records[k];
  rates(m, pageSize);
  return m;
}

/** Sets a round's encoding rate and cache miss rate from its counts. */
function rates(round: RoundStats, pageSize: number): void {
  const sent = round.records.PAGE + round.records.ZERO + round.records.XBZRLE;
  const encoded = round.xbzrleBytes + pageSize * round.overflow;
  round.encodingRate = encoded > 0 ? ((round.records.XBZRLE + round.overflow) * pageSize) / encoded : null;
  round.cacheMissRate = sent > 0 ? (round.cacheMiss + round.resent) / sent : null;
}

function emptyRound(round: number, position: number): RoundStats {
  return {
    round,
    lastRound: round,
    position,
    bytes: 0,
    records: { PAGE: 0, ZERO: 0, XBZRLE: 0, MEM_SIZE: 0, EOS: 0 },
    bytesByKind: new Array<number>(CELL_KINDS).fill(0),
    newPages: 0,
    cacheMiss: 0,
    overflow: 0,
    resent: 0,
    xbzrleBytes: 0,
    encodingRate: null,
    cacheMissRate: null,
  };
}

/**
 * Gathers a report's data from RAM records, one at a time, in bounded memory:
 * a bit per page (sent before or not), per-cell byte counters for the current
 * round, and one byte per cell for each map kept. Records are read, never kept.
 *
 * Feed every record to {@link MigrationCollector.record} before it is applied
 * to `content` (when given): a PAGE record for a page sent before is then
 * classified by encoding it against the previous content of the page (the
 * receiver's copy, which is what the sender's cache holds): a delta that would
 * not fit in a page makes it an overflow, any other a cache miss.
 */
export class MigrationCollector {
  /** Rounds closed so far (successive ones merged pairwise beyond `maxRounds`). */
  readonly rounds: RoundStats[] = [];
  /** XBZRLE delta sizes, counts per {@link DELTA_SIZE_EDGES} bucket. */
  readonly deltaSizes: number[] = new Array<number>(DELTA_SIZE_EDGES.length).fill(0);
  /** How PAGE records for pages sent before were classified: by content, not at all, or by content until memory ran out. */
  classification: 'content' | 'none' | 'partial';
  /** True when pages came from a mapped-ram file's page regions ({@link MigrationCollector.presentPage}). */
  mappedRam = false;

  private readonly blocks = new Map<string, BlockState>();
  private current: RoundStats = emptyRound(1, 0);
  private mapCells = 0;
  private maxCells: number;
  private readonly limits: CollectorLimits;
  private readonly old: Uint8Array;
  private readonly delta: Uint8Array;

  constructor(
    private readonly pageSize: number,
    limits: Partial<CollectorLimits> = {},
    private content: MemoryPageStore | null = null,
  ) {
    const d = DEFAULT_COLLECTOR_LIMITS;
    this.limits = {
      maxCellsPerMap: limits.maxCellsPerMap ?? d.maxCellsPerMap,
      maxMapsPerBlock: limits.maxMapsPerBlock ?? d.maxMapsPerBlock,
      maxMapCells: limits.maxMapCells ?? d.maxMapCells,
      maxRounds: limits.maxRounds ?? d.maxRounds,
    };
    for (const [k, v] of Object.entries(this.limits)) {
      if (!Number.isSafeInteger(v) || v < 1) throw argRangeError(`options.${k}`, 'a positive integer', v);
    }
    this.maxCells = 2 ** Math.floor(Math.log2(this.limits.maxCellsPerMap)); // cells are grouped pairwise: a power of two
    this.classification = content === null ? 'none' : 'content';
    this.old = new Uint8Array(pageSize);
    this.delta = new Uint8Array(pageSize);
  }

  /** Stops classifying resent pages by content (memory limit reached); from now on they count as `resent`. */
  dropContent(): void {
    if (this.content === null) return;
    this.content = null;
    this.classification = this.classification === 'content' && this.anyResend() ? 'partial' : 'none';
  }

  private anyResend(): boolean {
    return this.current.cacheMiss + this.current.overflow > 0 || this.rounds.some((r) => r.cacheMiss + r.overflow > 0);
  }

  /** Takes one record (before it is applied to the content store). */
  record(rec: RamRecord): void {
    const round = this.current;
    round.bytes += rec.size;
    switch (rec.kind) {
      case 'eos':
        round.records.EOS++;
        round.bytesByKind[0]! += rec.size;
        this.endRound(rec.position + rec.size);
        return;
      case 'mem_size':
        round.records.MEM_SIZE++;
        round.bytesByKind[0]! += rec.size;
        this.declare(rec.blocks);
        return;
      default:
        break;
    }
    const b = this.block(rec.block);
    const index = Math.floor(rec.offset / this.pageSize);
    if (index >= b.pages) this.mapCells += b.reach(index);
    const before = b.sentBefore(index);
    let kind: number;
    if (rec.kind === 'zero') {
      kind = CELL_KIND.ZERO;
      round.records.ZERO++;
    } else if (rec.kind === 'xbzrle') {
      kind = CELL_KIND.XBZRLE;
      round.records.XBZRLE++;
      round.xbzrleBytes += rec.size - RECORD_HEADER_BYTES;
      this.deltaSizes[deltaSizeBucket(rec.length)]!++;
    } else {
      round.records.PAGE++;
      if (!before) {
        kind = CELL_KIND.PAGE;
        round.newPages++;
      } else if (this.content !== null) {
        kind = this.overflows(rec) ? CELL_KIND.OVERFLOW : CELL_KIND.MISS;
        if (kind === CELL_KIND.OVERFLOW) round.overflow++;
        else round.cacheMiss++;
      } else {
        kind = CELL_KIND.RESENT;
        round.resent++;
      }
    }
    round.bytesByKind[kind]! += rec.size;
    b.records++;
    b.touched = true;
    const cell = Math.floor(index / 2 ** b.shift);
    b.acc[cell * CELL_KINDS + kind]! += rec.size;
  }

  /**
   * A page of a mapped-ram file (stored once at a fixed offset, not sent as a
   * record): counted as a PAGE of the current round, of `pageSize` bytes.
   */
  presentPage(block: string, offset: number): void {
    this.mappedRam = true;
    const round = this.current;
    const b = this.block(block);
    const index = Math.floor(offset / this.pageSize);
    if (index >= b.pages) this.mapCells += b.reach(index);
    b.sentBefore(index);
    round.records.PAGE++;
    round.newPages++;
    round.bytes += this.pageSize;
    round.bytesByKind[CELL_KIND.PAGE]! += this.pageSize;
    b.records++;
    b.touched = true;
    b.acc[Math.floor(index / 2 ** b.shift) * CELL_KINDS + CELL_KIND.PAGE]! += this.pageSize;
  }

  /** Blocks a store was told about (a mapped-ram file's list, which reaches no `record`): declared unless known. */
  declareUnknown(list: readonly RamBlock[]): void {
    const fresh = list.filter((e) => !this.blocks.has(e.id));
    if (fresh.length > 0) this.declare(fresh);
  }

  /** True when the page of PAGE record `rec` does not fit in a delta against its previous content. */
  private overflows(rec: RamRecord): boolean {
    const content = this.content!;
    content.get(rec.block, rec.offset, this.old);
    try {
      return encodeXbzrle(this.old, rec.src.subarray(rec.srcOffset, rec.srcOffset + this.pageSize), this.delta) < 0;
    } catch {
      return true;
    }
  }

  private declare(list: readonly RamBlock[]): void {
    // Many large blocks: fewer cells per map, so that every block keeps a few maps.
    let total = 0;
    for (const e of list) total += Math.min(Math.ceil(e.length / this.pageSize), this.maxCells);
    while (this.maxCells > MIN_CELLS && total * 8 > this.limits.maxMapCells) {
      this.maxCells >>= 1;
      total = 0;
      for (const e of list) total += Math.min(Math.ceil(e.length / this.pageSize), this.maxCells);
    }
    for (const e of list) {
      const had = this.blocks.get(e.id);
      if (had !== undefined && (had.records > 0 || had.frames.length > 0)) {
        // Named by records before its MEM_SIZE entry: kept as it grew.
        had.declared = true;
        this.mapCells += had.reach(Math.ceil(e.length / this.pageSize) - 1);
        had.length = Math.max(had.length, e.length);
        continue;
      }
      if (had === undefined) this.checkBlockCount();
      this.blocks.set(e.id, new BlockState(e.id, e.length, true, this.pageSize, this.maxCells));
    }
  }

  /** The state of `id`, created (undeclared) on first sight. */
  private block(id: string): BlockState {
    let b = this.blocks.get(id);
    if (b === undefined) {
      this.checkBlockCount();
      b = new BlockState(id, 0, false, this.pageSize, this.maxCells);
      this.blocks.set(id, b);
    }
    return b;
  }

  private checkBlockCount(): void {
    if (this.blocks.size >= DEFAULT_MAX_BLOCKS) {
      throw new XbzrleError('ERR_LIMIT_EXCEEDED', `the stream names more than ${DEFAULT_MAX_BLOCKS} RAM blocks`);
    }
  }

  private endRound(next: number): void {
    const round = this.current;
    rates(round, this.pageSize);
    for (const b of this.blocks.values()) {
      if (!b.touched) continue;
      this.mapCells += b.endRound(round.round);
      if (b.frames.length > this.limits.maxMapsPerBlock) this.mapCells -= b.compact();
    }
    while (this.mapCells > this.limits.maxMapCells) {
      let biggest: BlockState | null = null;
      for (const b of this.blocks.values()) {
        if (b.frames.length > 1 && (biggest === null || b.frames.length * b.capacity > biggest.frames.length * biggest.capacity)) biggest = b;
      }
      if (biggest === null) break;
      this.mapCells -= biggest.compact();
    }
    this.rounds.push(round);
    if (this.rounds.length > this.limits.maxRounds) {
      const merged: RoundStats[] = [];
      for (let i = 0; i < this.rounds.length; i += 2) {
        const b = this.rounds[i + 1];
        merged.push(b === undefined ? this.rounds[i]! : mergeRounds(this.rounds[i]!, b, this.pageSize));
      }
      this.rounds.splice(0, this.rounds.length, ...merged);
    }
    this.current = emptyRound(round.round + 1, next);
  }

  /** Records taken after the last EOS (none in a complete stream). */
  get pendingRecords(): number {
    const r = this.current.records;
    return r.PAGE + r.ZERO + r.XBZRLE + r.MEM_SIZE;
  }

  /** The blocks' maps, in the order they were declared or first seen. */
  blockMaps(): BlockMap[] {
    const out: BlockMap[] = [];
    for (const b of this.blocks.values()) {
      const cells = b.cells;
      out.push({
        id: b.id,
        length: b.length,
        declared: b.declared,
        pages: b.pages,
        pagesPerCell: 2 ** b.shift,
        cells,
        roundsPerFrame: b.roundsPerFrame,
        frames: b.frames.map((f) => ({ ...f, codes: f.codes.subarray(0, cells) })),
        roundsSent: b.roundsSent.subarray(0, cells),
        bytesSent: b.bytesSent.subarray(0, cells),
        records: b.records,
      });
    }
    return out;
  }
}
