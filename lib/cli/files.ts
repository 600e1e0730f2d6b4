import { closeSync, createReadStream, fstatSync, openSync, readdirSync, readSync, renameSync, rmdirSync, unlinkSync, write as fsWrite, type Stats } from 'node:fs';
import { link, lstat, mkdir, open, realpath, rename, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Readable, Transform, type TransformCallback, type Writable } from 'node:stream';
import { isDeltaMagic } from '../delta/format.js';
import { XbzrleError } from '../errors.js';
import { CliError, errnoText, namedError } from './errors.js';
import { compressionOf, decompressCommand, isQemuFileMagic, looksLikeRamStream, SNIFF_BYTES, type Compression } from './sniff.js';
import type { CliContext } from './io.js';
import { readableOver, zstdDecompressed, ZstdInputError } from './zstd-input.js';

/** Every temp file's output, as the user named it (kept after the temp is gone, for messages). */
const tempNames = new Map<string, string>();
/** The runs in this process with temp files or folders to remove if it is interrupted. */
const live = new Set<CliContext>();
/** Called once, when the first run makes a temp file or folder (the bin installs its signal handlers then). */
let firstCleanup: (() => void) | undefined;

/**
 * Has `hook` called when a run first makes a temp file or a folder: the bin
 * installs its signal handlers then (which call {@link removeAllTempsSync}),
 * so a run that writes nothing dies of a signal as any process does.
 */
export function onFirstCleanup(hook: () => void): void {
  firstCleanup = hook;
}

function track(ctx: CliContext): void {
  live.add(ctx);
  const hook = firstCleanup;
  firstCleanup = undefined;
  hook?.();
}

/** Removes the run's pending temp files, then the folders it created if empty (on a fatal error). */
export function removeTempsSync(ctx: CliContext): void {
  undoCommits(ctx); // outputs committed as one, interrupted midway
  for (const path of ctx.temps) {
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  }
  ctx.temps.clear();
  while (ctx.dirs.length > 0) {
    try {
      rmdirSync(ctx.dirs.pop()!);
    } catch {
      // not empty (something else was put there) or already gone: leave it
    }
  }
  live.delete(ctx);
}

/** The run is over and keeps what it wrote: nothing of it is removed on a signal. */
export function releaseRun(ctx: CliContext): void {
  live.delete(ctx);
}

/** Removes every run's pending temp files and created folders (on a signal, or a failed stdout). */
export function removeAllTempsSync(): void {
  for (const ctx of [...live]) removeTempsSync(ctx);
}

/**
 * The file a system error is about, as the user named it: the output a temp file
 * stands for (a copy's destination first), else the path the error names.
 */
export function systemErrorName(err: unknown): string | undefined {
  const e = err as (NodeJS.ErrnoException & { dest?: string }) | null;
  return outputNameOf(e?.dest) ?? outputNameOf(e?.path) ?? e?.path;
}

/** The name the user gave the output a temp file stands for (for messages), or undefined. */
export function outputNameOf(path: string | undefined): string | undefined {
  return path === undefined ? undefined : tempNames.get(path);
}

/**
 * Creates folder `dir` (and missing parents), remembering what it created so a
 * failed or interrupted run removes them again (`removeCreatedDirs`, and on
 * signals). Errors name `dir`.
 */
export async function createDir(ctx: CliContext, dir: string): Promise<void> {
  track(ctx);
  const existing = await stat(dir).catch(() => null);
  if (existing !== null) {
    if (!existing.isDirectory()) throw new CliError(`${dir}: not a folder`);
    return;
  }
  try {
    await makeDirs(resolve(dir), ctx.dirs);
  } catch (err) {
    throw namedError(dir, err);
  }
}

/**
 * `mkdir -p`, one level at a time (Node's recursive mkdir spins for ever on
 * some file systems, /proc for one), noting each folder made in `created`.
 */
async function makeDirs(dir: string, created: string[]): Promise<void> {
  try {
    await mkdir(dir);
    created.push(dir);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      if ((await stat(dir)).isDirectory()) return;
      throw err;
    }
    if (code !== 'ENOENT' || dirname(dir) === dir) throw err;
  }
  await makeDirs(dirname(dir), created);
  await mkdir(dir);
  created.push(dir);
}

/** Removes the folders `createDir` made, when empty (a failed run leaves nothing behind). */
export async function removeCreatedDirs(ctx: CliContext): Promise<void> {
  while (ctx.dirs.length > 0) await rmdir(ctx.dirs.pop()!).catch(() => undefined);
}

/** Forgets the folders `createDir` made: the run succeeded and they stay. */
export function keepCreatedDirs(ctx: CliContext): void {
  ctx.dirs.length = 0;
}

/** The stdout closed early (e.g. `| head`): exit quietly. */
export class BrokenPipe extends Error {}

/** A place output bytes go: a temp file renamed into place on success, or stdout. */
export interface OutputSink {
  /** What to call the output in messages. */
  readonly name: string;
  /**
   * True when a chunk is no longer referenced once its `write` resolved (the
   * bytes went to the file), so its memory may be reused; false for a stream
   * (stdout), which may keep it.
   */
  readonly releasesChunks: boolean;
  write(chunk: Uint8Array): Promise<void>;
  /** Finishes: fsync and rename into place (files), or drain (stdout). */
  commit(): Promise<void>;
  /** Gives up: removes the temp file. Never throws. */
  abort(): Promise<void>;
}

async function exists(path: string): Promise<Stats | null> {
  try {
    return await stat(path);
  } catch {
    return null;
  }
}

/** Where an output goes, once checked. */
export interface OutputTarget {
  /** The file to write: the path given, or the file a symbolic link there points to. */
  path: string;
  /** A device, FIFO or socket (written directly: no temp file, no rename). */
  special: boolean;
}

/**
 * Refuses to write over an existing file without -f, over an input file ever,
 * and over a folder. A symbolic link is followed (its target is written, the
 * link stays). Anything else that is not a regular file (a device, a FIFO) is
 * refused unless `special` allows writing into it directly; a block device
 * then still needs -f.
 */
export async function checkOutputPath(path: string, force: boolean, inputs: (string | undefined)[], special = false): Promise<OutputTarget> {
  let target = path;
  const link = await lstat(path).catch(() => null);
  if (link === null) return { path, special: false };
  if (link.isSymbolicLink()) {
    try {
      target = await realpath(path);
    } catch {
      // Links to what has no path (/dev/stdout to a pipe: /proc/self/fd/1 → pipe:[N])
      // are opened through the link; only a link to nothing is refused.
      if ((await exists(path)) === null) throw new CliError(`${path}: is a symbolic link to nothing; refusing to replace it`);
    }
  }
  const st = await exists(target);
  if (st === null) return { path: target, special: false };
  await checkNotInput(path, st, inputs);
  if (st.isDirectory()) throw new CliError(`${path}: is a directory`);
  if (!st.isFile()) {
    if (!special) throw new CliError(`${path}: is not a regular file; refusing to replace it`);
    if (st.isBlockDevice() && !force) throw new CliError(`${path}: is a block device (use -f to write to it)`);
    return { path: target, special: true };
  }
  if (!force) throw new CliError(`${path}: already exists (use -f to overwrite)`);
  return { path: target, special: false };
}

/** Refuses an output (`st`, named `name`) that is one of the input files. */
async function checkNotInput(name: string, st: Stats, inputs: (string | undefined)[]): Promise<void> {
  for (const input of inputs) {
    if (input === undefined || input === '-') continue;
    const ist = await exists(input);
    if (ist !== null && ist.dev === st.dev && ist.ino === st.ino) {
      throw new CliError(`${name}: is also an input file; refusing to overwrite it`);
    }
  }
}

/**
 * Removes temp files of `finalPath` left by runs that were killed outright
 * (SIGKILL cannot be caught): those whose process no longer exists.
 */
function removeStaleTemps(finalPath: string): void {
  // Exactly `.<name>.<pid>.<random>.xbzrle-tmp`: a temp of `a.5` (`.a.5.<pid>.…`) is not one of `a`'s.
  const own = new RegExp(`^\\.${escapeRegExp(tempStem(finalPath))}\\.(\\d+)\\.[a-z0-9]+\\.xbzrle-tmp$`);
  let names: string[];
  try {
    names = readdirSync(dirname(finalPath));
  } catch {
    return;
  }
  for (const name of names) {
    const match = own.exec(name);
    if (match === null) continue;
    const pid = Number(match[1]);
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || isAlive(pid)) continue;
    try {
      unlinkSync(join(dirname(finalPath), name));
    } catch {
      // someone else removed it
    }
  }
}

/**
 * The output's name as it appears in its temp files' names: the name itself, or
 * for long names (the temp name adds ~35 bytes; names stop at 255) a prefix and
 * a hash of the whole.
 */
function tempStem(finalPath: string): string {
  const name = basename(finalPath);
  if (Buffer.byteLength(name) <= 180) return name;
  const bytes = Buffer.from(name);
  return `${bytes.subarray(0, 120).toString('utf8').replace(/\uFFFD+$/, '')}~${nameHash(bytes)}`;
}

/**
 * 16 hex digits of a name's bytes: two FNV-1a hashes with different seeds. A
 * temp's name only needs to be told apart from other long names' in one folder;
 * `node:crypto` costs a CLI run ~6 ms to load for it.
 */
function nameHash(bytes: Uint8Array): string {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (const byte of bytes) {
    a = Math.imul(a ^ byte, 0x01000193);
    b = Math.imul(b ^ byte, 0x01000193) ^ (b >>> 15);
  }
  return (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A new temp file next to `finalPath`, removed on failure or interruption. */
export class TempFile {
  readonly path: string;
  private committed = false;

  /** @param displayName what to call the output in messages (default: `finalPath`). */
  constructor(
    private readonly ctx: CliContext,
    readonly finalPath: string,
    readonly displayName = finalPath,
  ) {
    track(ctx);
    removeStaleTemps(finalPath);
    const rand = Math.random().toString(36).slice(2, 10);
    this.path = join(dirname(finalPath), `.${tempStem(finalPath)}.${process.pid}.${rand}.xbzrle-tmp`);
    ctx.temps.add(this.path);
    tempNames.set(this.path, displayName);
  }

  /** Renames the temp file into place and fsyncs the folder. */
  async commit(force: boolean): Promise<void> {
    if (!force && (await exists(this.finalPath)) !== null) {
      throw new CliError(`${this.finalPath}: already exists (use -f to overwrite)`);
    }
    // Its data on disk before its name is (writers fsync as they close; a temp file
    // nothing was written through, such as a copy patch left as it was, is synced here).
    try {
      const file = await open(this.path, 'r');
      await file.sync().finally(() => file.close());
      await rename(this.path, this.finalPath);
    } catch (err) {
      throw namedError(this.displayName, err);
    }
    this.ctx.temps.delete(this.path);
    this.committed = true;
    try {
      const dir = await open(dirname(this.finalPath), 'r');
      await dir.sync().finally(() => dir.close());
    } catch {
      // Not every file system lets a folder be fsynced.
    }
  }

  async abort(): Promise<void> {
    if (this.committed) return;
    this.ctx.temps.delete(this.path);
    await unlink(this.path).catch(() => undefined);
  }
}

/**
 * Commits several temp files as one output (`extract`'s block files): each
 * renamed into place in turn, a file it replaces (with `force`) set aside
 * first (a hard link beside it, or where no link can be made, the file moved
 * there). When one fails — or the run is interrupted (`removeTempsSync`) —
 * those already in place are undone: a replaced file put back, a new one
 * removed; so a run that fails leaves every output as it was.
 */
export async function commitAll(ctx: CliContext, temps: Iterable<TempFile>, force: boolean): Promise<void> {
  const undo = ctx.undo;
  try {
    for (const t of temps) {
      const u = { final: t.finalPath, backup: force ? await setAside(t.finalPath, t.displayName) : null, committed: false };
      undo.push(u);
      await t.commit(force);
      u.committed = true;
    }
  } catch (err) {
    undoCommits(ctx);
    throw err;
  }
  for (const u of undo.splice(0)) if (u.backup !== null) await unlink(u.backup).catch(() => undefined);
}

/** Puts back what {@link commitAll} had done when it failed or was interrupted: a replaced file from its backup, a new one removed. */
function undoCommits(ctx: CliContext): void {
  for (const u of ctx.undo.splice(0).reverse()) {
    try {
      if (u.backup !== null) renameSync(u.backup, u.final);
      else if (u.committed) unlinkSync(u.final);
    } catch {
      // gone already, or cannot be helped
    }
  }
}

/**
 * The regular file at `path` kept aside under a name beside it (a hard link,
 * else the file moved there), to be put back; null when there is none.
 */
async function setAside(path: string, displayName: string): Promise<string | null> {
  const st = await lstat(path).catch(() => null);
  if (st === null || !st.isFile()) return null;
  const name = join(dirname(path), `.${tempStem(path)}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.xbzrle-old`);
  try {
    await link(path, name);
    return name;
  } catch {
    // No hard links here (vfat, some network file systems): the file itself goes aside.
  }
  try {
    await rename(path, name);
    return name;
  } catch (err) {
    throw namedError(displayName, err);
  }
}

/**
 * Where binary output goes: `path` (via a temp file and rename), or stdout
 * when `path` is undefined or '-', refused when stdout is a terminal unless
 * forced.
 */
export async function openOutput(ctx: CliContext, path: string | undefined, force: boolean, inputs: (string | undefined)[]): Promise<OutputSink> {
  if (path === undefined || path === '-') {
    if (ctx.io.stdout.isTTY === true && !force) {
      throw new CliError('refusing to write binary data to a terminal (use -o FILE, a pipe, or -f)');
    }
    // `>> input` or `1<> input`: stdout is one of the inputs.
    const st = stdoutStats(ctx);
    if (st !== null && st.isFile()) await checkNotInput('stdout', st, inputs);
    // A file or a device such as /dev/null (not a terminal): written through its descriptor,
    // at its own position (`>>` appends), each chunk done with once written, so the encoder
    // reuses its output slabs instead of taking fresh memory for each (~0.15 s of a 512 MiB
    // encode to /dev/null). Pipes and sockets go through the stream, which may keep chunks.
    if (st !== null && ctx.io.stdoutFd !== undefined && ctx.io.stdout.isTTY !== true && (st.isFile() || st.isCharacterDevice())) {
      return descriptorSink(ctx.io.stdoutFd);
    }
    return stdoutSink(ctx.io.stdout);
  }
  const target = await checkOutputPath(path, force, inputs, true);
  if (target.special) {
    // `-o /dev/stdout` (or /dev/fd/1): our own stdout, which may be a socket that
    // cannot be opened by name.
    const st = await exists(target.path);
    const out = stdoutStats(ctx);
    if (st !== null && out !== null && st.dev === out.dev && st.ino === out.ino) return openOutput(ctx, '-', force, inputs);
    return deviceSink(path, target.path);
  }
  const temp = new TempFile(ctx, target.path, path);
  let handle: FileHandle;
  try {
    handle = await open(temp.path, 'wx');
  } catch (err) {
    await temp.abort();
    throw namedError(path, err);
  }
  return handleSink(path, handle, true, () => temp.commit(force), () => temp.abort());
}

/**
 * Output through an open file handle, its errors naming the output. A regular
 * (temp) file is written at explicit positions and fsynced before `done`; a
 * device or FIFO in stream order. `done` / `cancel` run after the close.
 */
function handleSink(name: string, handle: FileHandle, regular: boolean, done: () => Promise<void>, cancel: () => Promise<void>): OutputSink {
  const named = (err: unknown): CliError => namedError(name, err);
  return {
    name,
    releasesChunks: true,
    write: writerAt(name, regular, async (chunk, offset, length, position) => (await handle.write(chunk, offset, length, position)).bytesWritten),
    async commit() {
      try {
        if (regular) await handle.sync();
        await handle.close();
      } catch (err) {
        throw named(err);
      }
      await done();
    },
    async abort() {
      await handle.close().catch(() => undefined);
      await cancel();
    },
  };
}

/**
 * A sink's `write`: each chunk written whole, at explicit positions from 0
 * (`positioned`: a temp file) or at the descriptor's own position.
 */
function writerAt(name: string, positioned: boolean, write: (chunk: Uint8Array, offset: number, length: number, position: number | null) => Promise<number>): (chunk: Uint8Array) => Promise<void> {
  let position = 0;
  return async (chunk) => {
    let written = 0;
    try {
      while (written < chunk.length) written += await write(chunk, written, chunk.length - written, positioned ? position + written : null);
    } catch (err) {
      throw namedError(name, err);
    }
    position += chunk.length;
  };
}

/** Stdout as a file or device: written through its descriptor (left open: it is the process's). */
function descriptorSink(fd: number): OutputSink {
  const write = promisify(fsWrite);
  const nothing = async (): Promise<void> => {};
  return {
    name: 'stdout',
    releasesChunks: true,
    write: writerAt('stdout', false, async (chunk, offset, length) => (await write(fd, chunk, offset, length, null)).bytesWritten),
    commit: nothing,
    abort: nothing,
  };
}

function stdoutStats(ctx: CliContext): Stats | null {
  if (ctx.io.stdoutFd === undefined) return null;
  try {
    return fstatSync(ctx.io.stdoutFd);
  } catch {
    return null; // no stdout
  }
}

/** A device or FIFO: written directly (there is nothing to rename into place). */
async function deviceSink(name: string, path: string): Promise<OutputSink> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'w');
  } catch (err) {
    throw namedError(name, err);
  }
  const nothing = async (): Promise<void> => {};
  return handleSink(name, handle, false, nothing, nothing);
}

function stdoutSink(out: Writable): OutputSink {
  let broken: Error | null = null;
  out.on('error', (err: NodeJS.ErrnoException) => {
    broken = err.code === 'EPIPE' ? new BrokenPipe('EPIPE') : err;
  });
  const check = (): void => {
    if (broken !== null) throw broken;
  };
  return {
    name: 'stdout',
    releasesChunks: false, // a Writable may keep the chunk after its callback
    async write(chunk) {
      check();
      if (!out.write(chunk)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            out.off('drain', done);
            out.off('error', done);
            out.off('close', done);
            resolve();
          };
          out.on('drain', done);
          out.on('error', done);
          out.on('close', done);
        });
      }
      check();
    },
    async commit() {
      check();
      await new Promise<void>((resolve) => out.write(new Uint8Array(0), () => resolve()));
      check();
    },
    async abort() {},
  };
}

/** An input: a file, or stdin for undefined / '-' (refused when stdin is a terminal). */
export interface Input {
  name: string;
  /** The input's bytes (decompressed when it was compressed and the command reads that). */
  stream: Readable;
  /** Size in bytes when known (uncompressed regular files). */
  size: number | undefined;
  path: string | undefined;
  /** The compressed format the input was in (and was decompressed from), if any. */
  compression?: Compression;
}

/**
 * What a command does with compressed input: `'read'` decompresses gzip and zstd
 * on the fly (other formats are refused with the command to decompress them), `'refuse'`
 * refuses every compressed input (images, which must be read as they are).
 */
export type CompressedInput = 'read' | 'refuse';

export async function openInput(ctx: CliContext, path: string | undefined, highWaterMark = 1 << 20, compressed: CompressedInput = 'read'): Promise<Input> {
  let input: Input;
  let head: Uint8Array;
  if (path === undefined || path === '-') {
    const stdin = ctx.io.stdin;
    if (stdin.isTTY === true) throw new CliError('no input: stdin is a terminal (give a file name or a pipe)', true);
    const peeked = await peek(stdin, SNIFF_BYTES);
    head = peeked.head;
    input = { name: 'stdin', stream: peeked.stream, size: undefined, path: undefined };
  } else {
    let st: Stats;
    try {
      st = await stat(path);
    } catch (err) {
      throw namedError(path, err);
    }
    if (st.isDirectory()) throw new CliError(`${path}: is a directory`);
    if (st.isFile()) {
      head = readHead(path, st);
      input = { name: path, stream: createReadStream(path, { highWaterMark }), size: st.size, path };
    } else {
      // A FIFO, a device, /dev/fd/N: read once, so its first bytes are peeked at.
      const peeked = await peek(createReadStream(path, { highWaterMark }), SNIFF_BYTES);
      head = peeked.head;
      input = { name: path, stream: peeked.stream, size: undefined, path };
    }
  }
  const kind = compressionOf(head);
  if (kind === null) return input;
  if ((kind !== 'gzip' && kind !== 'zstd') || compressed === 'refuse') {
    input.stream.destroy();
    throw new CliError(`${input.name}: ${kind}-compressed: decompress it first (${decompressCommand(kind)})`);
  }
  const source = input.stream;
  if (kind === 'zstd') return { ...input, stream: zstdDecompressed(source), size: undefined, compression: kind };
  const { createGunzip } = await import('node:zlib'); // for gzip input only (every command's start would otherwise load it)
  const inflate = createGunzip({ chunkSize: Math.max(64 * 1024, Math.min(highWaterMark, 4 << 20)) });
  source.on('error', (err) => inflate.destroy(err));
  inflate.on('error', () => source.destroy());
  inflate.on('close', () => source.destroy());
  source.pipe(inflate);
  return { ...input, stream: inflate, size: undefined, compression: kind };
}

/** Refuses a compressed file where a command needs it as it is (an image), naming the format. */
export async function refuseCompressedFile(path: string): Promise<void> {
  let st: Stats;
  try {
    st = await stat(path);
  } catch (err) {
    throw namedError(path, err);
  }
  const kind = compressionOf(readHead(path, st));
  if (kind !== null) throw new CliError(`${path}: ${kind}-compressed: decompress it first (${decompressCommand(kind)})`);
}

/** The first bytes of a regular file (nothing for devices and FIFOs, which are read once). */
function readHead(path: string, st: Stats): Uint8Array {
  if (!st.isFile()) return new Uint8Array(0);
  const head = new Uint8Array(SNIFF_BYTES);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw namedError(path, err);
  }
  try {
    return head.subarray(0, readSync(fd, head, 0, SNIFF_BYTES, 0));
  } catch (err) {
    throw namedError(path, err);
  } finally {
    closeSync(fd);
  }
}

/**
 * The first bytes of an opened input (as read: after any decompression), and
 * the input with a stream that still yields every byte.
 */
export async function peekInput(input: Input, n = SNIFF_BYTES): Promise<{ head: Uint8Array; input: Input }> {
  const { head, stream } = await peek(input.stream, n);
  return { head, input: { ...input, stream } };
}

/**
 * The first `n` bytes of a stream that can be read only once (stdin), and a
 * stream that yields every byte, those included.
 */
async function peek(source: Readable, n: number): Promise<{ head: Uint8Array; stream: Readable }> {
  const it = source[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
  const first: Uint8Array[] = [];
  let have = 0;
  let done = false;
  while (have < n) {
    const r = await it.next();
    if (r.done === true) {
      done = true;
      break;
    }
    first.push(r.value);
    have += r.value.length;
  }
  const head = Buffer.concat(first).subarray(0, n);
  const rest = async function* (): AsyncGenerator<Uint8Array> {
    yield* first;
    if (done) return;
    for (let r = await it.next(); r.done !== true; r = await it.next()) yield r.value;
  };
  return { head, stream: readableOver(rest(), source) };
}

/** Re-chunks a byte stream into pieces of exactly `size` bytes (the last may be shorter). */
export async function* exactChunks(stream: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  let pending: Uint8Array | null = null;
  let fill = 0;
  for await (const chunk of stream) {
    let at = 0;
    while (at < chunk.length) {
      if (pending === null && fill === 0 && chunk.length - at >= size) {
        // Whole pieces straight from the chunk (stream chunks are never reused).
        yield chunk.subarray(at, at + size);
        at += size;
        continue;
      }
      pending ??= new Uint8Array(size);
      const n = Math.min(size - fill, chunk.length - at);
      pending.set(chunk.subarray(at, at + n), fill);
      fill += n;
      at += n;
      if (fill === size) {
        yield pending;
        pending = null;
        fill = 0;
      }
    }
  }
  if (pending !== null && fill > 0) yield pending.subarray(0, fill);
}

/** Counts bytes passing through and remembers the first eight (to recognise what the input is). */
export class InputMeter extends Transform {
  bytes = 0;
  private head = new Uint8Array(SNIFF_BYTES);
  private headLength = 0;

  constructor(private readonly onBytes?: (bytes: number) => void) {
    super();
  }

  /** True when the input starts with QEMU's "QEVM" magic. */
  get isQemuFile(): boolean {
    return isQemuFileMagic(this.head.subarray(0, this.headLength));
  }

  /** True when the input starts with the magic of this package's delta files (`xbzrle diff`). */
  get isDeltaFile(): boolean {
    return isDeltaMagic(this.head.subarray(0, this.headLength));
  }

  /** False when the input cannot be a RAM record stream: empty, or a first record header no stream starts with (see `looksLikeRamStream`). */
  get mayBeRamStream(): boolean {
    if (this.headLength > 0 && this.headLength < SNIFF_BYTES) return true; // too short to tell: truncated
    return looksLikeRamStream(this.head.subarray(0, this.headLength));
  }

  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.observe(chunk);
    cb(null, chunk);
  }

  /** Counts (and sniffs) a chunk read without the stream, for a command that feeds a core itself. */
  observe(chunk: Uint8Array): void {
    if (this.headLength < SNIFF_BYTES) {
      const n = Math.min(SNIFF_BYTES - this.headLength, chunk.length);
      this.head.set(chunk.subarray(0, n), this.headLength);
      this.headLength += n;
    }
    this.bytes += chunk.length;
    this.onBytes?.(this.bytes);
  }
}

/** Turns a data error into a one-line CLI error naming the input. */
export function inputError(name: string, err: unknown, meter?: InputMeter): unknown {
  if (err instanceof XbzrleError) {
    if (meter?.isQemuFile === true && err.code.startsWith('ERR_RAM_')) {
      return new CliError(`${name}: this is a QEMU migration file, not a delta (try: xbzrle stat / xbzrle extract)`);
    }
    if (meter?.isDeltaFile === true && err.code.startsWith('ERR_RAM_')) {
      return new CliError(`${name}: a delta file made by 'xbzrle diff': apply it with 'xbzrle patch BASE ${name === 'stdin' ? '-' : name} -o NEW'`);
    }
    if (meter !== undefined && err.code.startsWith('ERR_RAM_') && !meter.isQemuFile && !meter.mayBeRamStream) {
      return new CliError(`${name}: ${meter.bytes === 0 ? 'empty: ' : ''}not a RAM record stream or QEMU migration file${meter.bytes === 0 ? '' : ' (byte 0 starts no record)'}`);
    }
    return new CliError(`${name}: ${err.message}`);
  }
  if (errnoText(err) !== null) return namedError(systemErrorName(err) ?? name, err);
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (typeof code === 'string' && code.startsWith('Z_')) {
    return new CliError(`${name}: gzip-compressed input is corrupt or truncated (${(err as Error).message})`);
  }
  if (err instanceof ZstdInputError) return new CliError(`${name}: ${err.message}`);
  return err;
}
