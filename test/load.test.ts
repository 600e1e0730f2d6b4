// Load and soak evidence (issue 3), run on the built package as child processes:
//  - bench/tcp-load.mjs: page records -> encoder -> TCP -> decoder in another
//    process with a slow consumer; both processes' RSS must stay bounded (not
//    grow with the data) and the receiver's final image must equal the source.
//  - scripts/soak.mjs: a short run of random rounds, chunking and cache resizes.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { run } from './helpers/cli.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(ROOT, 'dist', 'index.js');

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `node <script> ...args` from the package root; SIGKILLs it after `timeoutMs`. */
async function runNode(script: string, args: readonly string[], timeoutMs: number): Promise<Run> {
  const r = await run(process.execPath, [join(ROOT, script), ...args], { cwd: ROOT, timeout: timeoutMs });
  return { ...r, stdout: r.stdout.toString('utf8') };
}

/** The last line of stdout that is a JSON object. */
function lastJson<T>(run: Run): T {
  const line = run.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .pop();
  if (line === undefined) throw new Error(`no JSON line in the output (exit ${run.code}, signal ${run.signal}):\n${run.stdout}\n${run.stderr}`);
  return JSON.parse(line) as T;
}

const describeRun = (run: Run): string => `exit ${run.code}, signal ${run.signal}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`;

interface TcpLoadSide {
  peakMiB: number;
  peakDeltaMiB: number;
  hwmMiB: number | null;
}
interface TcpLoadSummary {
  ok: boolean;
  verified: boolean;
  problems: string[];
  bytesIn: number;
  bytesOnWire: number;
  blockMiB: number;
  cacheMiB: number;
  producer: TcpLoadSide & { drainWaits: number };
  receiver: (TcpLoadSide & { storeMiB: number; overheadMiB: number; slowWaits: number; pages: number }) | null;
}

interface SoakSummary {
  ok: boolean;
  error: string | null;
  seed: number;
  rounds: number;
  checkpoints: number;
  pagesIn: number;
  pagesVerified: number;
  bytesOut: number;
  peakRssMiB: number;
}

beforeAll(() => {
  if (!existsSync(DIST)) {
    throw new Error(`${DIST} is missing: these tests run the built package; run \`npm run build\` first (\`npm test\` builds it).`);
  }
});

describe('backpressure under load: encoder -> TCP -> decoder in another process with a slow consumer', () => {
  it('moves 0.5 GiB of page records with both processes\' RSS bounded and the final image verified', async () => {
    // 4 rounds of a 128 MiB block (2 MiB records) through a 64 MiB cache.
    const run = await runNode('bench/tcp-load.mjs', ['--gib', '0.5', '--block', '128', '--cache', '64', '--json', '--quiet'], 110_000);
    expect(run.code, describeRun(run)).toBe(0);
    const s = lastJson<TcpLoadSummary>(run);
    expect(s.problems).toEqual([]);
    expect(s.ok).toBe(true);
    expect(s.verified).toBe(true);
    expect(s.bytesIn).toBe(512 * 1024 * 1024);
    expect(s.bytesOnWire).toBeGreaterThan(0);
    const r = s.receiver;
    expect(r).not.toBeNull();
    if (r === null) return;
    // Backpressure really happened: the consumer slept and the producer had to wait.
    expect(r.slowWaits).toBeGreaterThan(0);
    expect(s.producer.drainWaits).toBeGreaterThan(0);
    // Memory not proportional to the data (512 MiB in): the producer stays under
    // cache + 160 MiB; the receiver under its decoded image (at most the block) + 160 MiB.
    expect(s.cacheMiB).toBe(64);
    expect(s.producer.peakDeltaMiB, describeRun(run)).toBeLessThan(s.cacheMiB + 160);
    expect(r.storeMiB).toBeLessThanOrEqual(s.blockMiB);
    expect(r.overheadMiB, describeRun(run)).toBeLessThan(160);
    expect(r.peakDeltaMiB, describeRun(run)).toBeLessThan(s.blockMiB + 160);
  }, 120_000);

  it('fails (exit 1, not verified) when the receiver\'s image differs from the source', async () => {
    const run = await runNode('bench/tcp-load.mjs', ['--gib', '0.03125', '--block', '16', '--json', '--quiet', '--corrupt'], 50_000);
    expect(run.code, describeRun(run)).toBe(1);
    const s = lastJson<TcpLoadSummary>(run);
    expect(s.ok).toBe(false);
    expect(s.verified).toBe(false);
    expect(s.problems.join('\n')).toMatch(/final image differs/);
  }, 60_000);
});

describe('soak: random rounds, chunking and cache resizes over TCP', () => {
  it('runs a short soak (6 s) with every page verified', async () => {
    const run = await runNode('scripts/soak.mjs', ['--minutes', '0.1', '--seed', '3141592653', '--json', '--quiet'], 80_000);
    expect(run.code, describeRun(run)).toBe(0);
    const s = lastJson<SoakSummary>(run);
    expect(s.error).toBeNull();
    expect(s.ok).toBe(true);
    expect(s.seed).toBe(3141592653);
    expect(s.rounds).toBeGreaterThan(1);
    expect(s.checkpoints).toBeGreaterThanOrEqual(1);
    expect(s.pagesIn).toBeGreaterThan(0);
    expect(s.pagesVerified).toBeGreaterThan(0);
    expect(s.bytesOut).toBeGreaterThan(0);
  }, 90_000);
});
