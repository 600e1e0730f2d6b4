import { open } from 'node:fs/promises';
import { XbzrleError } from '../errors.js';
import { decodeName } from '../format/bytes.js';
import { MIN_PAGE_SIZE, MAX_PAGE_SIZE, RAM_SAVE_FLAG } from '../format/flags.js';
import { DEFAULT_MAX_BLOCKS, DEFAULT_MAX_IMAGE_SIZE, RamRecord, RamRecordParser, type TargetBlock } from '../format/record-parser.js';
import type { RamBlock } from '../format/record-writer.js';
import type { XbzrleStats } from '../stats.js';
import { MemoryPageStore } from '../store/memory-page-store.js';
import { checkThreads } from '../core/options.js';
import { hasInPlaceAccess, type PageStore } from '../store/page-store.js';
import { ParallelApply } from '../store/parallel-apply.js';
import { RamApplier } from '../store/ram-applier.js';
import { isPromise, RamLoader, type PageSink } from '../store/ram-loader.js';
import { ByteSource, type RandomAccessInput } from './byte-source.js';
import { readMappedRamMemSize, type MappedRamBlock } from './mapped-ram.js';
import { BytesInput, FileInput } from './sources.js';
import { guessQemuVersion, parseQemuVersion, QEMU_CHANGES, qemuAtLeast, type QemuVersion } from './version.js';

/** QEMU migration file magic, "QEVM". */
export const QEMU_VM_FILE_MAGIC = 0x5145564d;
/** The only container version QEMU writes (2 is obsolete). */
export const QEMU_VM_FILE_VERSION = 3;

/** Section and record type bytes of the container (spec: migration-file.md §1). */
export const QEMU_VM_SECTION = Object.freeze({
  /** End of the device state. */
  EOF: 0x00,
  /** A live handler's first section, with its name. */
  START: 0x01,
  /** A live handler's next section, by id. */
  PART: 0x02,
  /** A live handler's last section, by id. */
  END: 0x03,
  /** A device's whole state, with its name. */
  FULL: 0x04,
  /** A subsection (configuration, or inside a section). */
  SUBSECTION: 0x05,
  /** The JSON device description. */
  VMDESCRIPTION: 0x06,
  /** The configuration section (machine type). */
  CONFIGURATION: 0x07,
  /** A command record (postcopy, return path, switchover). */
  COMMAND: 0x08,
  /** A section footer. */
  FOOTER: 0x7e,
} as const);

/** QEMU's `MIG_CMD_POSTCOPY_ADVISE`. */
const CMD_POSTCOPY_ADVISE = 3;
/** QEMU's `MIG_CMD_SWITCHOVER_START` (QEMU ≥ 10.0, machine types ≥ 10.0). */
const CMD_SWITCHOVER_START = 11;

/** Input of {@link readQemuMigration}: a file path, or bytes. */
export type MigrationInput = string | Uint8Array | AsyncIterable<Uint8Array>;

/** Options of {@link readQemuMigration}. */
export interface ReadQemuMigrationOptions {
  /** Where RAM pages go. Default: a new {@link MemoryPageStore}; null counts and validates only. */
  store?: PageStore | null;
  /** Target page size, when the stream has no `configuration/target-page-bits`. Default 4096 (x86). */
  pageSize?: number;
  /** Most RAM blocks accepted. Default 4096; beyond it `ERR_LIMIT_EXCEEDED`. */
  maxBlocks?: number;
  /** Most bytes of RAM the MEM_SIZE list may declare. Default 16 TiB; beyond it `ERR_LIMIT_EXCEEDED`, before anything is allocated. */
  maxImageSize?: number;
  /** Called as input arrives, with the bytes read so far. */
  onProgress?: (bytesRead: number) => void;
  /** Called for every RAM page record once applied (see {@link RamLoader}). */
  onPage?: PageSink;
  /** Called for every RAM record before it is applied (the record object is reused: copy what you keep). */
  onRecord?: (record: RamRecord) => void;
  /**
   * The QEMU version that wrote the stream (`'10.0'`), when you know it better
   * than the guess from the machine type (see {@link QemuVersion}): it decides
   * the statistics' shape and whether MULTIFD_FLUSH records are accepted.
   */
  qemuVersion?: string;
  /**
   * Accept MULTIFD_FLUSH records (skipped, counted in `stats.multifdFlushes`).
   * Default: when the stream comes from QEMU ≥ 8.1 (the version guess), whose
   * loader accepts them (and which wrote them even without multifd, in 8.1);
   * a stream from an older or unknown QEMU gets `ERR_RAM_UNSUPPORTED`, as
   * QEMU ≤ 8.0 refuses them.
   */
  allowMultifdFlush?: boolean;
  /**
   * The RAM blocks of the machine meant to load the stream: QEMU's loader
   * checks against them (see `DecoderOptions.target`). For mapped-ram files
   * only the block names and the pages' offsets are checked, as QEMU does.
   */
  target?: readonly TargetBlock[];
  /**
   * Threads to apply RAM records on, with a store that can be written in
   * place ({@link MemoryPageStore}, {@link FilePageStore}) and no `onPage`: as
   * `DecoderOptions.threads`. Default 1.
   */
  threads?: number;
}

/** Where and why reading stopped. */
export interface MigrationStop {
  /** File offset of the item reading stopped at (or the end of input). */
  offset: number;
  /** Why: a section of another handler, the EOF marker, or the end of the input. */
  reason: 'section' | 'eof' | 'end-of-input';
  /** The section type at `offset` (for `reason: 'section'`). */
  type?: 'START' | 'PART' | 'END' | 'FULL';
  /** Section id. */
  sectionId?: number;
  /** Section name (START/FULL). */
  idstr?: string;
  /** Section instance (START/FULL). */
  instanceId?: number;
  /** Section version (START/FULL). */
  versionId?: number;
}

/** RAM sections read, by type. */
export interface RamSectionCounts {
  /** START sections. */
  start: number;
  /** PART sections. */
  part: number;
  /** END sections. */
  end: number;
}

/** What {@link readQemuMigration} found. */
export interface QemuMigrationInfo {
  /** Machine type from the configuration section, or null if the stream has none. */
  machine: string | null;
  /** Container version (3). */
  version: number;
  /** Target page size used for the RAM records. */
  pageSize: number;
  /** Capabilities the configuration section validates (`x-ignore-shared`, `mapped-ram`). */
  capabilities: string[];
  /** The `configuration/uuid` subsection, as hex, when present. */
  uuid: string | null;
  /** RAM blocks from MEM_SIZE (with page sizes / addresses where the stream has them). */
  blocks: RamBlock[];
  /** RAM sections read. */
  sections: RamSectionCounts;
  /** COMMAND records skipped, by command number. */
  commands: Record<number, number>;
  /** True when the `ram` END section was read: the stream held all RAM. */
  ramComplete: boolean;
  /** Where reading stopped: device state cannot be parsed generically. */
  stoppedAt: MigrationStop;
  /**
   * RAM record counters, as the source QEMU's `query-migrate` reports them
   * for the version in `qemuVersion`: `stats.toQueryMigrate()` has exactly
   * that version's `ram` keys (`toJSON()` keeps `skipped` for compatibility).
   * `transferred`: the RAM record bytes plus 8 per PART section before 8.2,
   * every byte of the stream from 8.2 (the input is read to its end to count
   * them; a file path is measured instead); `precopy-bytes` (PART sections'
   * records and EOS) and `downtime-bytes` (the END section's records) from
   * 7.0; no `skipped` from 9.1. With no version known: the 7.2-era counters
   * without the byte split. MULTIFD_FLUSH records are in `multifdFlushes`.
   * For mapped-ram files the counters describe the file, not the migration:
   * `normal` is the pages present (QEMU counted every write, rewrites
   * included), `transferred` the file size, no byte split.
   */
  stats: XbzrleStats;
  /** The QEMU version that wrote the stream, as far as it tells (see {@link QemuVersion}), or the `qemuVersion` option; null when unknown. */
  qemuVersion: QemuVersion | null;
  /** A mapped-ram file's layout, per block (bitmap and page region offsets, pages present); null for record streams. */
  mappedRam: MappedRamBlock[] | null;
  /**
   * Set when the stream is a multifd main channel: its `ram` sections are
   * complete but carry no page (multifd sends pages over other connections,
   * so a capture of the main channel alone has none): a sentence saying so.
   * `ramComplete` is then false. Null otherwise.
   */
  multifdMainChannel: string | null;
  /** The store holding the pages (null when none was used). */
  store: PageStore | null;
}

/**
 * Reads a QEMU migration stream (a file written by `migrate "exec:cat > FILE"`,
 * or any byte source) and rebuilds its RAM: magic and version, the
 * configuration section with its subsections, then the `ram` handler's START,
 * PART and END sections (found by name; CONTINUE carried across them), whose
 * records go through the same loader as {@link XbzrleDecodeStream}, with
 * COMMAND records skipped by length. Reading stops cleanly at the first
 * section it cannot parse generically (device state, or another live
 * handler), reported in `stoppedAt`; `ramComplete` tells whether the `ram`
 * END section was reached.
 *
 * QEMU 7.2 to 10.x streams (docs/qemu-support.md): the statistics follow the
 * version that wrote the stream (`qemuVersion`, guessed from the machine
 * type); MULTIFD_FLUSH records are accepted from QEMU 8.1; a mapped-ram file
 * (`migrate file:` with the mapped-ram capability, QEMU ≥ 9.0) is read from
 * its bitmaps and page regions (positioned reads for a path or bytes, a
 * forward read for a pipe; layout in `mappedRam`); a multifd main channel,
 * which carries no page, is said to be one (`multifdMainChannel`). With
 * `target`, QEMU's loader checks against the receiving machine's blocks.
 *
 * Unlike QEMU's `analyze-migration.py`, XBZRLE pages are decoded.
 *
 * @throws XbzrleError `ERR_QEMU_BAD_MAGIC` (not a QEMU stream),
 *   `ERR_QEMU_VERSION`, `ERR_QEMU_TRUNCATED`, `ERR_QEMU_CORRUPT` (unknown
 *   item type, bad footer), `ERR_QEMU_UNSUPPORTED` (ram section version
 *   other than 4, unknown configuration subsection, a mapped-ram region
 *   behind the read position of a pipe), and every RAM record error of the
 *   decoder.
 *
 * @example
 * ```ts
 * const store = new MemoryPageStore()
 * const info = await readQemuMigration('vm.mig', { store })
 * console.log(info.machine, info.blocks, info.stats.toJSON())
 * const ram = store.read('pc.ram')
 * ```
 */
export async function readQemuMigration(input: MigrationInput, options: ReadQemuMigrationOptions = {}): Promise<QemuMigrationInfo> {
  checkThreads(options.threads);
  let random: RandomAccessInput | undefined;
  let iterable: AsyncIterable<Uint8Array>;
  let close: (() => Promise<void>) | null = null;
  if (typeof input === 'string') {
    const handle = await open(input, 'r');
    try {
      const st = await handle.stat();
      if (st.isFile()) {
        random = new FileInput(handle, st.size);
        iterable = random;
        close = () => handle.close();
      } else {
        // A FIFO, a character device: read in order.
        iterable = handle.createReadStream({ highWaterMark: 1 << 20 });
      }
    } catch (err) {
      await handle.close();
      throw err;
    }
  } else if (input instanceof Uint8Array) {
    random = new BytesInput(input);
    iterable = random;
  } else {
    iterable = input;
  }
  const src = new ByteSource(iterable, options.onProgress, random);
  const made: Made = { loader: null };
  try {
    return await read(src, options, made);
  } catch (err) {
    // Records still queued for the worker pool came first: a delta among them that
    // fails is the error one thread would have reported.
    made.loader?.flush();
    throw err;
  } finally {
    made.loader?.dispose(); // the worker pool's staging area, with threads
    await src.close();
    await close?.();
  }
}

/** What {@link read} made that must be released however it ends. */
interface Made {
  loader: RamLoader | null;
}

async function read(src: ByteSource, options: ReadQemuMigrationOptions, made: Made): Promise<QemuMigrationInfo> {
  await src.need(8);
  if (src.available < 4 || src.u32() !== QEMU_VM_FILE_MAGIC) {
    throw new XbzrleError('ERR_QEMU_BAD_MAGIC', 'not a QEMU migration stream (no "QEVM" magic at byte 0)', { offset: 0 });
  }
  await src.require(4, 'the file header');
  const version = src.u32();
  if (version !== QEMU_VM_FILE_VERSION) {
    throw new XbzrleError('ERR_QEMU_VERSION', `migration stream version ${version} is not supported (only 3)`, { offset: 4 });
  }
  const store: PageStore | null = options.store === undefined ? new MemoryPageStore() : options.store;
  const info: Omit<QemuMigrationInfo, 'stats'> = {
    machine: null,
    version,
    pageSize: options.pageSize ?? 4096,
    capabilities: [],
    uuid: null,
    blocks: [],
    sections: { start: 0, part: 0, end: 0 },
    commands: {},
    ramComplete: false,
    stoppedAt: { offset: 0, reason: 'end-of-input' },
    store,
    qemuVersion: null,
    mappedRam: null,
    multifdMainChannel: null,
  };

  if ((await src.need(1)) && src.peek() === QEMU_VM_SECTION.CONFIGURATION) await readConfiguration(src, info);
  const pageSize = info.pageSize;
  if (pageSize < MIN_PAGE_SIZE || pageSize > MAX_PAGE_SIZE || (pageSize & (pageSize - 1)) !== 0) {
    throw new XbzrleError('ERR_QEMU_UNSUPPORTED', `target page size ${pageSize} is not supported (1 KiB to 16 KiB)`);
  }
  const mappedRam = info.capabilities.includes('mapped-ram');
  const given = options.qemuVersion === undefined ? null : parseQemuVersion(options.qemuVersion);
  const early = given ?? guessQemuVersion(info.machine, { switchoverStart: false, mappedRam, multifdFlush: false });
  const allowMultifdFlush = options.allowMultifdFlush ?? qemuAtLeast(early, QEMU_CHANGES.multifdFlush);
  let endBytes = 0;

  let postcopy = false;
  let parser: RamRecordParser | null = null;
  let loader: RamLoader | null = null;
  let applier: RamApplier | null = null;
  let ramId = -1;
  let footers = false;

  for (;;) {
    const at = src.offset;
    if (!(await src.need(1))) {
      info.stoppedAt = { offset: at, reason: 'end-of-input' };
      break;
    }
    const type = src.peek();
    if (type === QEMU_VM_SECTION.EOF) {
      info.stoppedAt = { offset: at, reason: 'eof' };
      break;
    }
    if (type === QEMU_VM_SECTION.COMMAND) {
      await src.require(5, 'a COMMAND record');
      src.skip(1);
      const cmd = src.u16();
      const len = src.u16();
      await src.require(len, `COMMAND ${cmd}`);
      src.skip(len);
      info.commands[cmd] = (info.commands[cmd] ?? 0) + 1;
      if (cmd === CMD_POSTCOPY_ADVISE) postcopy = true;
      continue;
    }
    if (type === QEMU_VM_SECTION.START || type === QEMU_VM_SECTION.FULL) {
      await src.require(6, 'a section header');
      src.skip(1);
      const sectionId = src.u32();
      const len = src.u8();
      await src.require(len + 8, 'a section header');
      const idstr = decodeName(src.bytes(len), 0, len);
      const instanceId = src.u32();
      const versionId = src.u32();
      if (idstr !== 'ram' || type !== QEMU_VM_SECTION.START || instanceId !== 0) {
        info.stoppedAt = { offset: at, reason: 'section', type: type === QEMU_VM_SECTION.START ? 'START' : 'FULL', sectionId, idstr, instanceId, versionId };
        break;
      }
      if (versionId !== 4) {
        throw new XbzrleError('ERR_QEMU_UNSUPPORTED', `ram section version ${versionId} at byte ${at} is not supported (only 4)`, { offset: at });
      }
      if (parser !== null) throw new XbzrleError('ERR_QEMU_CORRUPT', `second ram START section at byte ${at}`, { offset: at });
      ramId = sectionId;
      info.sections.start++;
      const ignoreShared = info.capabilities.includes('x-ignore-shared');
      const maxBlocks = options.maxBlocks ?? DEFAULT_MAX_BLOCKS;
      const maxImageSize = options.maxImageSize ?? DEFAULT_MAX_IMAGE_SIZE;
      parser = new RamRecordParser({ pageSize, maxBlocks, maxImageSize, postcopy, ignoreShared, allowMultifdFlush, target: options.target });
      loader = new RamLoader({ pageSize, store, onPage: options.onPage, parallel: parallelApply(store, options, pageSize), borrow: true });
      made.loader = loader;
      if (mappedRam) {
        const listAt = src.offset;
        info.mappedRam = await readMappedRamMemSize(src, { pageSize, parser, loader, store, maxBlocks, maxImageSize, ignoreShared, onPage: options.onPage });
        if (info.mappedRam !== null && options.onRecord !== undefined) {
          // The list, read by the mapped-ram reader, shown as the MEM_SIZE record it is.
          const rec = new RamRecord();
          rec.kind = 'mem_size';
          rec.flags = RAM_SAVE_FLAG.MEM_SIZE;
          rec.position = listAt;
          rec.offset = info.mappedRam.reduce((n, b) => n + b.length, 0);
          rec.blocks = (loader.blocks ?? []).map((b) => ({ ...b }));
          rec.size = src.offset - listAt;
          options.onRecord(rec);
        }
      }
    } else if (type === QEMU_VM_SECTION.PART || type === QEMU_VM_SECTION.END) {
      await src.require(5, 'a section header');
      src.skip(1);
      const sectionId = src.u32();
      if (parser === null || sectionId !== ramId) {
        info.stoppedAt = { offset: at, reason: 'section', type: type === QEMU_VM_SECTION.PART ? 'PART' : 'END', sectionId };
        break;
      }
      if (type === QEMU_VM_SECTION.PART) info.sections.part++;
      else info.sections.end++;
    } else {
      throw new XbzrleError('ERR_QEMU_CORRUPT', `unknown item type 0x${type.toString(16).padStart(2, '0')} at byte ${at}`, { offset: at });
    }

    const before = loader!.pageRecordBytes;
    applier ??= new RamApplier(parser!, loader!, options.onRecord);
    await readRamBody(src, applier);
    if (type === QEMU_VM_SECTION.END) endBytes += loader!.pageRecordBytes - before;

    // Section footer (absent only for machine types ≤ 2.3, and then from every section:
    // once one was seen, a stream ending where the next is due is cut short).
    const footerAt = src.offset;
    if (!(await src.need(1))) {
      if (footers) await src.require(1, 'a section footer');
    } else if (src.peek() === QEMU_VM_SECTION.FOOTER) {
      await src.require(5, 'a section footer');
      src.skip(1);
      const id = src.u32();
      if (id !== ramId) {
        throw new XbzrleError('ERR_QEMU_CORRUPT', `section footer at byte ${footerAt} names section ${id}, not ${ramId}`, { offset: footerAt });
      }
      footers = true;
    }
    if (type === QEMU_VM_SECTION.END) info.ramComplete = true;
  }

  if (loader === null) loader = new RamLoader({ pageSize, store: null });
  else {
    loader.flush(); // what is still queued for the worker pool
    await store?.finish?.();
  }
  info.blocks = loader.blocks ?? [];
  const stats = loader.stats;
  stats.multifdFlushes = parser?.multifdFlushes ?? 0;
  info.qemuVersion =
    given ?? guessQemuVersion(info.machine, { switchoverStart: (info.commands[CMD_SWITCHOVER_START] ?? 0) > 0, mappedRam, multifdFlush: stats.multifdFlushes > 0 });
  const v = info.qemuVersion;
  // Bytes of the RAM records as QEMU counts them: page records, plus the EOS of every PART section.
  const ramBytes = loader.pageRecordBytes + 8 * info.sections.part;
  const wholeStream = async (): Promise<number> => (info.stoppedAt.reason === 'end-of-input' ? src.offset + src.available : await src.drain());
  if (mappedRam) {
    stats.transferred = await wholeStream();
  } else {
    stats.transferred = qemuAtLeast(v, QEMU_CHANGES.transferredWholeStream) ? await wholeStream() : ramBytes;
    if (qemuAtLeast(v, QEMU_CHANGES.splitBytes)) {
      stats.precopyBytes = ramBytes - endBytes;
      stats.downtimeBytes = endBytes;
      stats.postcopyBytes = 0;
    }
  }
  if (qemuAtLeast(v, QEMU_CHANGES.noSkipped)) stats.reportSkipped = false;
  const pages = stats.records.PAGE + stats.records.ZERO + stats.records.XBZRLE;
  if (info.ramComplete && !mappedRam && pages === 0 && info.blocks.some((b) => b.length > 0)) {
    // QEMU always sends every page at least once: with none here, they went over other connections.
    info.ramComplete = false;
    info.multifdMainChannel =
      `a multifd main channel: pages travel in the other multifd channels (one connection each, as many as the multifd-channels parameter said; ` +
      `not recorded in this stream); this one has the block list, ${stats.multifdFlushes} MULTIFD_FLUSH and ${stats.records.EOS} EOS records only`;
  }
  return { ...info, stats };
}

/**
 * @internal The configuration of a QEMU migration file (machine type,
 * capabilities, page size, UUID) without reading further: null when the file
 * does not start with the magic. For the CLI, which picks the mapped-ram fast
 * path of `extract` from it.
 */
export async function probeQemuMigration(path: string): Promise<Pick<QemuMigrationInfo, 'machine' | 'capabilities' | 'pageSize' | 'uuid'> | null> {
  const handle = await open(path, 'r');
  try {
    const st = await handle.stat();
    if (!st.isFile()) return null;
    const input = new FileInput(handle, st.size);
    const src = new ByteSource(input, undefined, input);
    if (!(await src.need(8)) || src.u32() !== QEMU_VM_FILE_MAGIC || src.u32() !== QEMU_VM_FILE_VERSION) return null;
    const info = { machine: null, capabilities: [], pageSize: 4096, uuid: null } as unknown as Omit<QemuMigrationInfo, 'stats'>;
    if ((await src.need(1)) && src.peek() === QEMU_VM_SECTION.CONFIGURATION) await readConfiguration(src, info);
    return { machine: info.machine, capabilities: info.capabilities, pageSize: info.pageSize, uuid: info.uuid };
  } finally {
    await handle.close();
  }
}

/** Longest machine type name accepted (QEMU's are a few dozen bytes; the field is 32-bit). */
const MAX_MACHINE_TYPE = 4096;
/** Most capabilities accepted in the configuration (QEMU 7.2 knows about 20). */
const MAX_CAPABILITIES = 4096;

/** Reads the configuration section: machine type and subsections. */
async function readConfiguration(src: ByteSource, info: Omit<QemuMigrationInfo, 'stats'>): Promise<void> {
  await src.require(5, 'the configuration section');
  src.skip(1);
  const len = src.u32();
  if (len > MAX_MACHINE_TYPE) {
    throw new XbzrleError('ERR_QEMU_CORRUPT', `machine type of ${len} bytes at byte ${src.offset - 4} (QEMU's are a few dozen)`, { offset: src.offset - 4 });
  }
  await src.require(len, 'the machine type');
  info.machine = decodeName(src.bytes(len), 0, len);
  while ((await src.need(1)) && src.peek() === QEMU_VM_SECTION.SUBSECTION) {
    const at = src.offset;
    await src.require(2, 'a configuration subsection');
    src.skip(1);
    const nameLen = src.u8();
    await src.require(nameLen + 4, 'a configuration subsection');
    const name = decodeName(src.bytes(nameLen), 0, nameLen);
    src.skip(4); // version
    switch (name) {
      case 'configuration/target-page-bits': {
        await src.require(4, name);
        const bits = src.u32();
        if (bits > 30) throw new XbzrleError('ERR_QEMU_CORRUPT', `target page bits ${bits} at byte ${at}`, { offset: at });
        if (2 ** bits < MIN_PAGE_SIZE || 2 ** bits > MAX_PAGE_SIZE) {
          throw new XbzrleError('ERR_QEMU_UNSUPPORTED', `target page size ${2 ** bits} at byte ${at} is not supported (1 KiB to 16 KiB)`, { offset: at });
        }
        info.pageSize = 2 ** bits;
        break;
      }
      case 'configuration/capabilities': {
        await src.require(4, name);
        const count = src.u32();
        if (count > MAX_CAPABILITIES) {
          throw new XbzrleError('ERR_QEMU_CORRUPT', `${count} migration capabilities at byte ${src.offset - 4} (QEMU has a few dozen)`, { offset: src.offset - 4 });
        }
        for (let i = 0; i < count; i++) {
          await src.require(1, name);
          const n = src.u8();
          await src.require(n, name);
          info.capabilities.push(decodeName(src.bytes(n), 0, n));
        }
        break;
      }
      case 'configuration/uuid': {
        await src.require(16, name);
        info.uuid = Array.from(src.bytes(16), (b) => b.toString(16).padStart(2, '0')).join('');
        break;
      }
      default:
        throw new XbzrleError('ERR_QEMU_UNSUPPORTED', `unknown configuration subsection ${JSON.stringify(name)} at byte ${at}`, { offset: at });
    }
  }
}

/** Feeds the records of one RAM section body to the applier, through its EOS. */
async function readRamBody(src: ByteSource, applier: RamApplier): Promise<void> {
  const parser = applier.parser;
  const loader = applier.loader;
  // Parser positions are file offsets: set at the body's first byte.
  parser.position = src.offset;
  // Each chunk's PAGE records may be taken by the store as they are (RamLoaderOptions.borrow):
  // released before the next chunk is asked for, before the rest goes back to the source, and
  // before an error leaves (the caller's chunks may be reused once we are done with them).
  try {
    applier.push(src.takeBuffered());
    for (;;) {
      let rec = applier.next();
      if (rec === null) {
        loader.release();
        const chunk = await src.nextChunk();
        if (chunk === null) {
          parser.end(); // ERR_RAM_TRUNCATED when inside a record
          throw new XbzrleError('ERR_QEMU_TRUNCATED', `migration stream ends at byte ${parser.position} inside a ram section (no EOS)`, { offset: parser.position });
        }
        applier.push(chunk);
        continue;
      }
      if (isPromise(rec)) rec = await rec;
      if (rec.kind === 'eos') {
        loader.release();
        src.putBack(parser.takeRemainder(), parser.position);
        return;
      }
    }
  } catch (err) {
    loader.releaseAfterError();
    throw err;
  }
}

/** With `threads` > 1, a store written in place and no `onPage`: the worker pool's applier, else null. */
function parallelApply(store: PageStore | null, options: ReadQemuMigrationOptions, pageSize: number): (() => ParallelApply | null) | null {
  const threads = options.threads ?? 1; // checked by readQemuMigration
  if (threads === 1 || options.onPage !== undefined || !hasInPlaceAccess(store)) return null;
  return ParallelApply.later(threads, pageSize);
}
