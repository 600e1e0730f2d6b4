/**
 * Runs the built `xbzrle` bin (dist/cli.js) as a child process, for end-to-end
 * CLI tests. `npm test` builds before running vitest.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
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

/** `node dist/cli.js ...args`, collecting stdout as bytes and stderr as text. */
export function runCli(args: readonly string[], options: RunOptions = {}): Promise<CliResult> {
  return run(process.execPath, [CLI, ...args], options);
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
