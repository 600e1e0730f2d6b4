import { createHash } from 'node:crypto';
import { createReadStream, fstatSync, readdirSync, unlinkSync, type Stats } from 'node:fs';
import { lstat, open, realpath, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { XbzrleError } from '../errors.js';
import { CliError } from './errors.js';

/** Temp files to remove if the process is interrupted. */
const pendingTemps = new Set<string>();
let signalsHooked = false;

function hookSignals(): void {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ] as const) {
    process.on(signal, () => {
      removeTempsSync();
      process.exit(code);
    });
  }
}

/** Removes every pending temp file (on a fatal error or a signal). */
export function removeTempsSync(): void {
  for (const path of pendingTemps) {
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  }
  pendingTemps.clear();
}

/** The stdout closed early (e.g. `| head`): exit quietly. */
export class BrokenPipe extends Error {}

/** A place output bytes go: a temp file renamed into place on success, or stdout. */
export interface OutputSink {
  /** What to call the output in messages. */
  readonly name: string;
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
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 16);
  return `${Buffer.from(name).subarray(0, 120).toString('utf8').replace(/\uFFFD+$/, '')}~${hash}`;
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

  constructor(readonly finalPath: string) {
    hookSignals();
    removeStaleTemps(finalPath);
    const rand = Math.random().toString(36).slice(2, 10);
    this.path = join(dirname(finalPath), `.${tempStem(finalPath)}.${process.pid}.${rand}.xbzrle-tmp`);
    pendingTemps.add(this.path);
  }

  /** Renames the temp file into place and fsyncs the folder. */
  async commit(force: boolean): Promise<void> {
    if (!force && (await exists(this.finalPath)) !== null) {
      throw new CliError(`${this.finalPath}: already exists (use -f to overwrite)`);
    }
    // Its data on disk before its name is (writers fsync as they close; a temp file
    // nothing was written through, such as a copy patch left as it was, is synced here).
    const file = await open(this.path, 'r');
    await file.sync().finally(() => file.close());
    await rename(this.path, this.finalPath);
    pendingTemps.delete(this.path);
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
    pendingTemps.delete(this.path);
    await unlink(this.path).catch(() => undefined);
  }
}

/**
 * Where binary output goes: `path` (via a temp file and rename), or stdout
 * when `path` is undefined or '-', refused when stdout is a terminal unless
 * forced.
 */
export async function openOutput(path: string | undefined, force: boolean, inputs: (string | undefined)[]): Promise<OutputSink> {
  if (path === undefined || path === '-') {
    if (process.stdout.isTTY === true && !force) {
      throw new CliError('refusing to write binary data to a terminal (use -o FILE, a pipe, or -f)');
    }
    // `>> input` or `1<> input`: stdout is one of the inputs.
    const st = stdoutStats();
    if (st !== null && st.isFile()) await checkNotInput('stdout', st, inputs);
    return stdoutSink();
  }
  const target = await checkOutputPath(path, force, inputs, true);
  if (target.special) {
    // `-o /dev/stdout` (or /dev/fd/1): our own stdout, which may be a socket that
    // cannot be opened by name.
    const st = await exists(target.path);
    const out = stdoutStats();
    if (st !== null && out !== null && st.dev === out.dev && st.ino === out.ino) return openOutput('-', force, inputs);
    return deviceSink(path, target.path);
  }
  const temp = new TempFile(target.path);
  let handle: FileHandle;
  try {
    handle = await open(temp.path, 'wx');
  } catch (err) {
    await temp.abort();
    throw new CliError(`${path}: cannot create: ${(err as Error).message}`);
  }
  return handleSink(path, handle, true, () => temp.commit(force), () => temp.abort());
}

/**
 * Output through an open file handle, its errors naming the output. A regular
 * (temp) file is written at explicit positions and fsynced before `done`; a
 * device or FIFO in stream order. `done` / `cancel` run after the close.
 */
function handleSink(name: string, handle: FileHandle, regular: boolean, done: () => Promise<void>, cancel: () => Promise<void>): OutputSink {
  const named = (err: unknown): CliError => new CliError(`${name}: ${(err as Error).message}`);
  let position = 0;
  return {
    name,
    async write(chunk) {
      let written = 0;
      try {
        while (written < chunk.length) {
          const { bytesWritten } = await handle.write(chunk, written, chunk.length - written, regular ? position + written : null);
          written += bytesWritten;
        }
      } catch (err) {
        throw named(err);
      }
      position += chunk.length;
    },
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

function stdoutStats(): Stats | null {
  try {
    return fstatSync(1);
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
    throw new CliError(`${name}: cannot open: ${(err as Error).message}`);
  }
  const nothing = async (): Promise<void> => {};
  return handleSink(name, handle, false, nothing, nothing);
}

function stdoutSink(): OutputSink {
  const out = process.stdout;
  let broken: Error | null = null;
  out.on('error', (err: NodeJS.ErrnoException) => {
    broken = err.code === 'EPIPE' ? new BrokenPipe('EPIPE') : err;
  });
  const check = (): void => {
    if (broken !== null) throw broken;
  };
  return {
    name: 'stdout',
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
  stream: Readable;
  /** Size in bytes when known (regular files). */
  size: number | undefined;
  path: string | undefined;
}

export async function openInput(path: string | undefined, highWaterMark = 1 << 20): Promise<Input> {
  if (path === undefined || path === '-') {
    if (process.stdin.isTTY === true) throw new CliError('no input: stdin is a terminal (give a file name or a pipe)', true);
    return { name: 'stdin', stream: process.stdin, size: undefined, path: undefined };
  }
  const st = await exists(path);
  if (st === null) throw new CliError(`${path}: no such file`);
  if (st.isDirectory()) throw new CliError(`${path}: is a directory`);
  const stream = createReadStream(path, { highWaterMark });
  return { name: path, stream, size: st.isFile() ? st.size : undefined, path };
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

/** Counts bytes passing through and remembers the first four (to recognise a QEMU file). */
export class InputMeter extends Transform {
  bytes = 0;
  private head = new Uint8Array(4);
  private headLength = 0;

  constructor(private readonly onBytes?: (bytes: number) => void) {
    super();
  }

  /** True when the input starts with QEMU's "QEVM" magic. */
  get isQemuFile(): boolean {
    return this.headLength === 4 && this.head[0] === 0x51 && this.head[1] === 0x45 && this.head[2] === 0x56 && this.head[3] === 0x4d;
  }

  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    if (this.headLength < 4) {
      const n = Math.min(4 - this.headLength, chunk.length);
      this.head.set(chunk.subarray(0, n), this.headLength);
      this.headLength += n;
    }
    this.bytes += chunk.length;
    this.onBytes?.(this.bytes);
    cb(null, chunk);
  }
}

/** Turns a data error into a one-line CLI error naming the input. */
export function inputError(name: string, err: unknown, meter?: InputMeter): unknown {
  if (err instanceof XbzrleError) {
    if (meter?.isQemuFile === true && err.code.startsWith('ERR_RAM_')) {
      return new CliError(`${name}: this is a QEMU migration file, not a delta (try: xbzrle stat / xbzrle extract)`);
    }
    return new CliError(`${name}: ${err.message}`);
  }
  return err;
}
