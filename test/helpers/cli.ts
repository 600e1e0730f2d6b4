/**
 * Runs the `xbzrle` command for CLI tests: in-process (`runMain`: `main(argv, io)`
 * over in-memory stdin, stdout and stderr; most tests), or the built bin
 * (dist/cli.cjs) as a child process (`runCli`: the end-to-end tests of signals,
 * terminals, pipes and the real exit status). `npm test` builds before running vitest.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { afterAll, beforeAll } from 'vitest';
import { fileURLToPath } from 'node:url';
import { main } from '../../lib/cli/main.js';

export const CLI = fileURLToPath(new URL('../../dist/cli.cjs', import.meta.url));
export const PACKAGE_JSON = fileURLToPath(new URL('../../package.json', import.meta.url));

export interface CliResult {
  /** Exit status (null when killed by a signal). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

export interface RunOptions {
  /** Bytes for stdin; stdin is an empty pipe (closed at once) when omitted. */
  input?: Uint8Array;
  cwd?: string;
  /** Kill the child after this many ms (default 30 s). */
  timeout?: number;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/** Throws a clear error when the bin has not been built. */
export function assertBuilt(): void {
  if (!existsSync(CLI)) {
    throw new Error(`${CLI} does not exist: run 'npm run build' first (npm test does it before vitest)`);
  }
}

/** `node dist/cli.cjs ...args`, collecting stdout as bytes and stderr as text. */
export function runCli(args: readonly string[], options: RunOptions = {}): Promise<CliResult> {
  return run(process.execPath, [CLI, ...args], options);
}

export interface MainOptions {
  /** Bytes for stdin (handed over in 64 KiB chunks, as a pipe would); an empty stdin when omitted. */
  input?: Uint8Array;
  /**
   * Working folder for the run (relative paths): the test process changes to it
   * for the run's duration, one such run at a time.
   */
  cwd?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Which of stdin, stdout and stderr claim to be terminals. */
  tty?: { stdin?: boolean; stdout?: boolean; stderr?: boolean };
}

/** Runs with a `cwd` wait for each other (the working folder is the process's). */
let cwdQueue: Promise<unknown> = Promise.resolve();

/**
 * `xbzrle ...args` in-process: `main(args, io)` over in-memory streams, collected
 * like `runCli` (stdout as bytes, stderr as text; `signal` always null).
 */
export function runMain(args: readonly string[], options: MainOptions = {}): Promise<CliResult> {
  if (options.cwd === undefined) return runMainHere(args, options);
  const cwd = options.cwd;
  const result = cwdQueue.then(async () => {
    const before = process.cwd();
    process.chdir(cwd);
    try {
      return await runMainHere(args, options);
    } finally {
      process.chdir(before);
    }
  });
  cwdQueue = result.catch(() => undefined);
  return result;
}

async function runMainHere(args: readonly string[], options: MainOptions): Promise<CliResult> {
  const input = options.input ?? new Uint8Array(0);
  const stdin = Readable.from(
    (function* () {
      for (let at = 0; at < input.length; at += 65536) yield Buffer.from(input.subarray(at, at + 65536));
    })(),
    { objectMode: false },
  );
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const collect = (into: Buffer[], isTTY: boolean): Writable & { isTTY: boolean } =>
    Object.assign(
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          into.push(Buffer.from(chunk));
          callback();
        },
      }),
      { isTTY },
    );
  const code = await main(args, {
    stdin: Object.assign(stdin, { isTTY: options.tty?.stdin === true }),
    stdout: collect(out, options.tty?.stdout === true),
    stderr: collect(err, options.tty?.stderr === true),
    env: { ...process.env, NO_COLOR: '1', ...options.env },
  });
  stdin.destroy();
  return { code, signal: null, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') };
}

/** Any program, collected the same way. */
export function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1', ...options.env },
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeout ?? 30_000);
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    // The child may exit without reading all of stdin (e.g. on an error).
    child.stdin.on('error', () => undefined);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') });
    });
    if (options.input !== undefined) child.stdin.end(options.input);
    else child.stdin.end();
  });
}

export function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Names of the temp files the CLI leaves behind, if any (`.NAME.PID.RAND.xbzrle-tmp`). */
export function tempFilesIn(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.endsWith('.xbzrle-tmp'));
}

/**
 * A scratch folder for one test file: made (after checking the bin is built)
 * before its tests, removed after them. `fresh(label)` gives a new empty
 * subfolder; `mode` sets the permissions of both (e.g. 0o755 for tests that
 * run the bin as another user).
 */
export function scratchFolders(prefix: string, mode?: number): { fresh: (label: string) => string; root: () => string } {
  let root = '';
  let counter = 0;
  beforeAll(async () => {
    assertBuilt();
    root = await mkdtemp(join(tmpdir(), prefix));
    if (mode !== undefined) chmodSync(root, mode);
  });
  afterAll(async () => {
    if (root !== '') await rm(root, { recursive: true, force: true });
  });
  return {
    fresh(label) {
      const dir = join(root, `${label}-${++counter}`);
      mkdirSync(dir);
      if (mode !== undefined) chmodSync(dir, mode);
      return dir;
    },
    root: () => root,
  };
}
