import type { FileHandle } from 'node:fs/promises';
import { XbzrleError } from '../errors.js';
import { decodeBlockName } from '../format/bytes.js';
import { RAM_SAVE_FLAG } from '../format/flags.js';
import type { RamRecordParser } from '../format/record-parser.js';
import type { RamBlock } from '../format/record-writer.js';
import type { PageStore } from '../store/page-store.js';
import type { PageSink, RamLoader } from '../store/ram-loader.js';
import type { ByteSource } from './byte-source.js';

/** Bytes of the header after each MEM_SIZE entry of a mapped-ram file: be32 version, be64 page size, be64 bitmap offset, be64 pages offset. */
export const MAPPED_RAM_HEADER_SIZE = 28;
/** The newest mapped-ram header version QEMU reads (it refuses greater ones; it writes 1). */
export const MAPPED_RAM_VERSION = 1;
/** Largest read of a run of present pages. */
const RUN_CHUNK = 4 << 20;
/** Runs copied at once by {@link copyMappedRamBlock}. */
const COPY_WORKERS = 4;

/** Where one block lives in a mapped-ram file, and how much of it is there. */
export interface MappedRamBlock {
  /** Block name. */
  id: string;
  /** Block length from MEM_SIZE. */
  length: number;
  /** Header version (1). */
  version: number;
  /** Page size the header gives (the stream's). */
  pageSize: number;
  /** File offset of the bitmap: ⌈pages / 64⌉ little-endian 64-bit words, bit i set when page i is in the file. */
  bitmapOffset: number;
  /** File offset of page 0; page i is at `pagesOffset + i × pageSize`. */
  pagesOffset: number;
  /** Pages of the block: ⌊length / page size⌋ (QEMU's count). */
  pages: number;
  /** Pages present in the file (bits set below `pages`); the others were never written and read as zeros. */
  present: number;
  /** Bitmap bits set past the last page (in the last word's padding): ignored, as QEMU ignores them. */
  ignoredBits: number;
  /** Guest address, with x-ignore-shared. */
  address?: number;
  /** With x-ignore-shared: the block is shared (bitmap and pages offsets 0), nothing of it is in the file. */
  shared?: boolean;
}

/** What reading a mapped-ram MEM_SIZE list needs. */
export interface MappedRamContext {
  pageSize: number;
  parser: RamRecordParser;
  loader: RamLoader;
  store: PageStore | null;
  maxBlocks: number;
  maxImageSize: number;
  ignoreShared: boolean;
  onPage?: PageSink;
}

/** Whether page `i` is present in `bitmap`. */
function isSet(bitmap: Uint8Array, i: number): boolean {
  return ((bitmap[i >>> 3]! >>> (i & 7)) & 1) === 1;
}

/** Pages present below `pages`, and bits set at or past it (padding of the last word). */
export function bitmapCounts(bitmap: Uint8Array, pages: number): { present: number; ignoredBits: number } {
  let present = 0;
  const fullBytes = pages >>> 3;
  for (let i = 0; i < fullBytes; i++) {
    let b = bitmap[i]!;
    while (b !== 0) {
      b &= b - 1;
      present++;
    }
  }
  for (let page = fullBytes * 8; page < pages; page++) if (isSet(bitmap, page)) present++;
  let ignoredBits = 0;
  for (let bit = pages; bit < bitmap.length * 8; bit++) if (isSet(bitmap, bit)) ignoredBits++;
  return { present, ignoredBits };
}

/** The first present page at or after `from` (below `pages`), or -1. */
export function nextPresent(bitmap: Uint8Array, pages: number, from: number): number {
  let i = Math.max(0, from);
  while (i < pages) {
    if ((i & 7) === 0 && bitmap[i >>> 3] === 0) {
      i += 8;
      continue;
    }
    if (isSet(bitmap, i)) return i;
    i++;
  }
  return -1;
}

/** The runs of present pages below `pages`, in order: `[start, end)` page indexes (a generator: no list is built). */
export function* presentRuns(bitmap: Uint8Array, pages: number): Generator<[number, number]> {
  let runStart = -1;
  const fullBytes = pages >>> 3;
  for (let i = 0; i < fullBytes; i++) {
    const b = bitmap[i]!;
    if (b === 0) {
      if (runStart >= 0) {
        yield [runStart, i * 8];
        runStart = -1;
      }
    } else if (b === 0xff) {
      if (runStart < 0) runStart = i * 8;
    } else {
      for (let k = 0; k < 8; k++) {
        const page = i * 8 + k;
        if ((b >>> k) & 1) {
          if (runStart < 0) runStart = page;
        } else if (runStart >= 0) {
          yield [runStart, page];
          runStart = -1;
        }
      }
    }
  }
  for (let page = fullBytes * 8; page < pages; page++) {
    if (isSet(bitmap, page)) {
      if (runStart < 0) runStart = page;
    } else if (runStart >= 0) {
      yield [runStart, page];
      runStart = -1;
    }
  }
  if (runStart >= 0) yield [runStart, pages];
}

/** Bytes of a block's bitmap: whole 64-bit words. */
export function bitmapSize(pages: number): number {
  return Math.ceil(pages / 64) * 8;
}

function be64(src: ByteSource): number {
  const hi = src.u32();
  const lo = src.u32();
  return hi * 2 ** 32 + lo;
}

/**
 * Reads the MEM_SIZE record that starts a mapped-ram file's `ram` START
 * section (spec: migration-file.md §11), with each block's header, bitmap
 * and pages: present pages go to the store in runs (positioned reads on a
 * file or bytes; on a pipe, a forward read with the holes dropped), absent
 * ones are left alone (zeros, holes in a file). Leaves `src` after the last
 * block's page region, where the section's records go on. Returns null
 * (consuming nothing) when the body does not start with MEM_SIZE.
 */
export async function readMappedRamMemSize(src: ByteSource, ctx: MappedRamContext): Promise<MappedRamBlock[] | null> {
  const { pageSize, parser, loader, store } = ctx;
  await src.require(8, 'a RAM record');
  const at = src.offset;
  const hi = src.u32();
  const lo = src.u32();
  const flags = lo % pageSize;
  if ((flags & ~RAM_SAVE_FLAG.CONTINUE) !== RAM_SAVE_FLAG.MEM_SIZE) {
    await src.skipTo(at, 'a RAM record');
    return null;
  }
  if (hi >= 0x200000) throw new XbzrleError('ERR_LIMIT_EXCEEDED', `MEM_SIZE record at byte ${at} declares a total of 2^53 bytes or more`, { offset: at });
  const total = hi * 2 ** 32 + (lo - flags);
  if (total > ctx.maxImageSize) {
    throw new XbzrleError('ERR_LIMIT_EXCEEDED', `MEM_SIZE record at byte ${at} declares ${total} bytes of memory, over the maxImageSize limit of ${ctx.maxImageSize}`, { offset: at });
  }
  const blocks: MappedRamBlock[] = [];
  const ramBlocks: RamBlock[] = [];
  let remaining = total;
  let buffer = new Uint8Array(0);
  while (remaining > 0) {
    const entryAt = src.offset;
    const bad = (why: string): never => {
      throw new XbzrleError('ERR_RAM_MEM_SIZE', `MEM_SIZE list at byte ${at}, entry at byte ${entryAt}: ${why}`, { offset: entryAt });
    };
    await src.require(1, 'a MEM_SIZE entry');
    const len = src.u8();
    await src.require(len + 8, 'a MEM_SIZE entry');
    const name = decodeBlockName(src.bytes(len), 0, len);
    if (len === 0) bad('empty block name');
    if (name === null) return bad('block name is not valid UTF-8');
    const id = name;
    const length = be64(src);
    if (length > remaining) bad(`block ${JSON.stringify(id)} is longer than the ${remaining} bytes left of the total`);
    if (length === 0) bad(`block ${JSON.stringify(id)} has length 0`);
    if (blocks.some((b) => b.id === id)) bad(`block ${JSON.stringify(id)} is listed twice`);
    if (blocks.length + 1 > ctx.maxBlocks) {
      throw new XbzrleError('ERR_LIMIT_EXCEEDED', `MEM_SIZE list at byte ${at} declares more than the maxBlocks limit of ${ctx.maxBlocks} blocks`, { offset: entryAt });
    }
    let address: number | undefined;
    if (ctx.ignoreShared) {
      await src.require(8, 'a MEM_SIZE entry');
      address = be64(src);
    }
    const headerAt = src.offset;
    await src.require(MAPPED_RAM_HEADER_SIZE, `the mapped-ram header of block ${JSON.stringify(id)}`);
    const version = src.u32();
    const headerPageSize = be64(src);
    const bitmapOffset = be64(src);
    const pagesOffset = be64(src);
    const where = `mapped-ram header of block ${JSON.stringify(id)} at byte ${headerAt}`;
    parser.targetMemSize(id, length, entryAt, false, `MEM_SIZE list at byte ${at}, entry at byte ${entryAt}`);
    if (version > MAPPED_RAM_VERSION) {
      throw new XbzrleError('ERR_QEMU_UNSUPPORTED', `${where}: version ${version} is not supported (QEMU reads versions up to ${MAPPED_RAM_VERSION})`, { offset: headerAt });
    }
    if (headerPageSize !== pageSize) {
      throw new XbzrleError('ERR_QEMU_CORRUPT', `${where}: page size ${headerPageSize}, but the stream's page size is ${pageSize}`, { offset: headerAt + 4 });
    }
    if (!Number.isSafeInteger(bitmapOffset) || !Number.isSafeInteger(pagesOffset) || !Number.isSafeInteger(pagesOffset + length)) {
      throw new XbzrleError('ERR_QEMU_CORRUPT', `${where}: bitmap offset ${bitmapOffset} or pages offset ${pagesOffset} is past 2^53`, { offset: headerAt + 12 });
    }
    const pages = Math.floor(length / pageSize);
    const entry: MappedRamBlock = { id, length, version, pageSize: headerPageSize, bitmapOffset, pagesOffset, pages, present: 0, ignoredBits: 0 };
    if (address !== undefined) entry.address = address;
    blocks.push(entry);
    const ramBlock: RamBlock = { id, length };
    if (address !== undefined) ramBlock.address = address;
    ramBlocks.push(ramBlock);
    remaining -= length;
    // QEMU: with x-ignore-shared, a shared block has no bitmap or pages (both offsets 0).
    if (ctx.ignoreShared && bitmapOffset === 0 && pagesOffset === 0) {
      entry.shared = true;
      continue;
    }
    if (pagesOffset % pageSize !== 0) {
      throw new XbzrleError('ERR_QEMU_CORRUPT', `${where}: pages offset ${pagesOffset} is not a multiple of the page size (QEMU: region has bad alignment)`, { offset: headerAt + 20 });
    }
    const size = bitmapSize(pages);
    // Allocated only once the input is known to hold it: whole on a file or bytes (known size),
    // piece by piece as it arrives on a pipe.
    let bitmap: Uint8Array;
    let got: number;
    if (src.random !== null || size <= 1 << 20) {
      bitmap = new Uint8Array(src.random === null ? size : Math.min(size, Math.max(0, src.random.size - bitmapOffset)));
      got = await src.readAt(bitmapOffset, bitmap, `the bitmap of block ${JSON.stringify(id)}`);
    } else {
      const pieces: Uint8Array[] = [];
      got = 0;
      while (got < size) {
        const piece = new Uint8Array(Math.min(1 << 20, size - got));
        const n = await src.readAt(bitmapOffset + got, piece, `the bitmap of block ${JSON.stringify(id)}`);
        pieces.push(piece.subarray(0, n));
        got += n;
        if (n < piece.length) break;
      }
      bitmap = new Uint8Array(got);
      let at = 0;
      for (const piece of pieces) {
        bitmap.set(piece, at);
        at += piece.length;
      }
    }
    if (got < size) {
      throw new XbzrleError(
        'ERR_QEMU_TRUNCATED',
        `the bitmap of block ${JSON.stringify(id)} (${size} bytes at byte ${bitmapOffset}, from the ${where}) runs past the end of the input at byte ${bitmapOffset + got}`,
        { offset: bitmapOffset + got },
      );
    }
    const { present, ignoredBits } = bitmapCounts(bitmap, pages);
    entry.present = present;
    entry.ignoredBits = ignoredBits;
    const targetLength = parser.targetLength(id);
    if (targetLength !== undefined) {
      const page = nextPresent(bitmap, pages, Math.ceil(targetLength / pageSize));
      if (page >= 0) {
        throw new XbzrleError('ERR_RAM_OFFSET', `${where}: page ${page} (offset 0x${(page * pageSize).toString(16)}) is set in the bitmap: page outside of ramblock ${id} range (the target's block has 0x${targetLength.toString(16)} bytes)`, {
          offset: bitmapOffset + (page >>> 3),
        });
      }
    }
    const rounded = Math.ceil(length / pageSize) * pageSize;
    if (store !== null) {
      const pending = store.declare?.([{ id, length: rounded }]);
      if (pending !== undefined) await pending;
      if (buffer.length === 0 && present > 0) buffer = new Uint8Array(RUN_CHUNK - (RUN_CHUNK % pageSize));
      for (const [first, last] of presentRuns(bitmap, pages)) {
        const start = first * pageSize;
        const end = last * pageSize;
        for (let off = start; off < end; off += buffer.length) {
          const chunk = buffer.subarray(0, Math.min(buffer.length, end - off));
          const n = await src.readAt(pagesOffset + off, chunk, `page ${off / pageSize} of block ${JSON.stringify(id)}`);
          if (n < chunk.length) throw pagesPastEnd(id, off + n, pageSize, pagesOffset, where);
          try {
            const put = store.put(id, off, chunk);
            if (put !== undefined) await put;
          } catch (err) {
            // A store's error (maxMemory, I/O) gets the position of the pages it refused.
            if (err instanceof XbzrleError && err.offset === undefined) {
              throw new XbzrleError(err.code, `pages at byte ${pagesOffset + off} (block ${JSON.stringify(id)}, offset ${off}): ${err.message}`, { offset: pagesOffset + off, cause: err });
            }
            throw err;
          }
          if (ctx.onPage !== undefined) {
            for (let p = 0; p < chunk.length; p += pageSize) ctx.onPage(id, off + p, 'page', chunk.subarray(p, p + pageSize), 0);
          }
        }
      }
    } else if (src.random !== null) {
      // Validate only: present pages must be in the file all the same.
      const page = nextPresent(bitmap, pages, Math.floor(Math.max(0, src.random.size - pagesOffset) / pageSize));
      if (page >= 0) throw pagesPastEnd(id, page * pageSize, pageSize, pagesOffset, where);
    }
    loader.stats.normal += present;
    // QEMU seeks past the whole page region to read the next entry.
    if (!(await src.skipTo(pagesOffset + length, `the end of block ${JSON.stringify(id)}'s page region`))) {
      throw new XbzrleError('ERR_QEMU_TRUNCATED', `migration stream ends before the end of block ${JSON.stringify(id)}'s page region at byte ${pagesOffset + length} (${where})`, {
        offset: pagesOffset + length,
      });
    }
  }
  // The list as one MEM_SIZE record: blocks known to the parser (CONTINUE and offset checks) and the loader.
  parser.knownBlocks = new Map([...(parser.knownBlocks ?? []), ...ramBlocks.map((b): [string, number] => [b.id, b.length])]);
  const merged = new Map((loader.blocks ?? []).map((b) => [b.id, b]));
  for (const b of ramBlocks) merged.set(b.id, b);
  loader.blocks = [...merged.values()];
  loader.stats.records.MEM_SIZE++;
  return blocks;
}

function pagesPastEnd(id: string, offset: number, pageSize: number, pagesOffset: number, where: string): XbzrleError {
  const page = Math.floor(offset / pageSize);
  const at = pagesOffset + page * pageSize;
  return new XbzrleError('ERR_QEMU_TRUNCATED', `page ${page} of block ${JSON.stringify(id)} (at byte ${at}, set in its bitmap; ${where}) lies past the end of the input`, { offset: at });
}

/**
 * Copies one block of a mapped-ram file into `output` at the same offsets
 * (file offset `pagesOffset + x` → output offset `x`): each run of present
 * pages in reads and writes of up to 4 MiB, absent pages left as holes, then
 * the output's length set to the block's (rounded up to a page, as QEMU
 * loads it). `input` is the migration file, `block` an entry of
 * `readQemuMigration(…).mappedRam`. Resolves to the bytes copied.
 * @throws XbzrleError `ERR_QEMU_TRUNCATED` when a present page lies past the input's end
 */
export async function copyMappedRamBlock(input: FileHandle, block: MappedRamBlock, output: FileHandle, pageSize = block.pageSize): Promise<number> {
  await output.truncate(0);
  let copied = 0;
  if (block.shared !== true) {
    const bitmap = new Uint8Array(bitmapSize(block.pages));
    const { bytesRead } = await input.read(bitmap, 0, bitmap.length, block.bitmapOffset);
    if (bytesRead < bitmap.length) {
      throw new XbzrleError('ERR_QEMU_TRUNCATED', `the bitmap of block ${JSON.stringify(block.id)} at byte ${block.bitmapOffset} runs past the end of the input`, { offset: block.bitmapOffset + bytesRead });
    }
    // Pieces of at most RUN_CHUNK bytes, copied by a few workers at once: the thread pool
    // overlaps their reads and writes, which matters when runs are short.
    const most = RUN_CHUNK - (RUN_CHUNK % pageSize);
    const pieces = (function* (): Generator<[number, number]> {
      for (const [first, last] of presentRuns(bitmap, block.pages)) {
        const end = last * pageSize;
        for (let off = first * pageSize; off < end; off += most) yield [off, Math.min(most, end - off)];
      }
    })();
    let failed = false;
    const worker = async (): Promise<void> => {
      const buffer = new Uint8Array(most);
      for (let piece = pieces.next(); piece.done !== true && !failed; piece = pieces.next()) {
        const [off, n] = piece.value;
        let got = 0;
        while (got < n) {
          const { bytesRead: k } = await input.read(buffer, got, n - got, block.pagesOffset + off + got);
          if (k === 0) throw pagesPastEnd(block.id, off + got, pageSize, block.pagesOffset, `block ${JSON.stringify(block.id)}`);
          got += k;
        }
        let put = 0;
        while (put < n) put += (await output.write(buffer, put, n - put, off + put)).bytesWritten;
        copied += n;
      }
    };
    const { present } = bitmapCounts(bitmap, block.pages);
    // The first error stops the other workers (they finish the piece in hand).
    const run = (): Promise<void> =>
      worker().catch((err: unknown) => {
        failed = true;
        throw err;
      });
    await Promise.all(Array.from({ length: Math.min(COPY_WORKERS, present) }, run));
  }
  await output.truncate(Math.ceil(block.length / pageSize) * pageSize);
  return copied;
}
