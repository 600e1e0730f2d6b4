/**
 * The equivalence checks of the benchmark (bench/run.mjs), as a test: on
 * every bench scenario (bench/scenarios.mjs, at a small size), the TypeScript
 * encoder, the SIMD kernel on ordinary buffers and the SIMD kernel on
 * allocPages memory give byte for byte the output of the independent C
 * encoder (bench/baseline.c, compiled with `cc` or $CC; those comparisons are
 * skipped, with a notice, when no compiler works), every delta decodes back
 * to the new page, and the streams give the same bytes from ordinary and
 * allocPages record data and rebuild the new buffer.
 *
 * Output compared: baseline.c's dump format, per page the int32 LE result of
 * the encoder, then the delta bytes when the result is > 0.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { allocPages, decodeXbzrle, encodeXbzrle, freePages, MemoryPageStore, type PageRecord } from '../lib/index.js';
import { encodeRange } from '../lib/codec/encode.js';
import { decodeChunks, encodeRounds } from './helpers/streams.js';

// The bench modules are plain JavaScript (type-checked from their JSDoc by
// tsconfig.scripts.json); this project's tsconfig does not read JavaScript, so
// they are imported by path and given the types of the parts used here.
interface Scenario {
  name: string;
  description: string;
}
interface ScenariosModule {
  SCENARIOS: readonly Scenario[];
  PAGE_SIZE: number;
  generate(scenario: Scenario, size: number): { old: Uint8Array; new: Uint8Array };
}
interface BaselineFiles {
  old: string;
  new: string;
  dump: string;
}
interface CBaselineModule {
  buildBaseline(options?: { dir?: string }): { bin: string; warnings: string } | { bin: null; reason: string; detail: string };
  baselineFiles(dir: string): BaselineFiles;
  runBaseline(bin: string, files: BaselineFiles, seconds: number, dump: boolean): { hash: string; encodedBytes: number; roundtripErrors: number };
}
const benchModule = async <T>(name: string): Promise<T> => (await import(fileURLToPath(new URL(`../bench/${name}`, import.meta.url)))) as T;
const { SCENARIOS, PAGE_SIZE, generate } = await benchModule<ScenariosModule>('scenarios.mjs');
const { buildBaseline, baselineFiles, runBaseline } = await benchModule<CBaselineModule>('lib/c-baseline.mjs');

/** Bytes per scenario: 160 pages, enough for every scenario's pattern to wrap across pages many times. */
const SIZE = 160 * PAGE_SIZE;

const dir = mkdtempSync(join(tmpdir(), 'xbzrle-bench-eq-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const built = buildBaseline({ dir });
const cc = built.bin;
if (built.bin === null) {
  console.warn(`bench-equivalence: the C baseline comparisons are skipped (${built.reason})${built.detail ? `:\n${built.detail}` : ''}`);
}

type Encode = (prev: Uint8Array, cur: Uint8Array, out: Uint8Array) => number;

/** The TypeScript encoder, whatever the kernel (what encodeXbzrle runs with XBZRLE_WASM=0). */
const encodeTs: Encode = (prev, cur, out) => encodeRange(prev, 0, cur, 0, cur.length, out, 0, out.length);

/** Every page of old/new encoded with `encode` (dlen = one page), in baseline.c's dump format. */
function dump(encode: Encode, oldBuf: Uint8Array, newBuf: Uint8Array, out: Uint8Array): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < oldBuf.length; at += PAGE_SIZE) {
    const r = encode(oldBuf.subarray(at, at + PAGE_SIZE), newBuf.subarray(at, at + PAGE_SIZE), out);
    const le = Buffer.alloc(4);
    le.writeInt32LE(r, 0);
    parts.push(le);
    if (r > 0) parts.push(Buffer.from(out.subarray(0, r)));
  }
  return Buffer.concat(parts);
}

/** The per-page results and deltas of a dump. */
function pages(d: Buffer): { result: number; delta: Buffer }[] {
  const list = [];
  for (let pos = 0; pos < d.length; ) {
    const result = d.readInt32LE(pos);
    list.push({ result, delta: d.subarray(pos + 4, pos + 4 + Math.max(result, 0)) });
    pos += 4 + Math.max(result, 0);
  }
  return list;
}

/** Where two dumps first differ, for the failure message ('' when they are equal). */
function firstDifference(label: string, got: Buffer, want: Buffer): string {
  if (got.equals(want)) return '';
  const a = pages(got);
  const b = pages(want);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (!x || !y || x.result !== y.result || !x.delta.equals(y.delta)) {
      return `${label}: first difference at page ${i}: result ${x?.result} against ${y?.result} (delta ${x?.delta.toString('hex')} against ${y?.delta.toString('hex')})`;
    }
  }
  return `${label}: dumps differ`;
}

/** A copy of `bytes` in allocPages memory (the caller frees it). */
function inKernel(bytes: Uint8Array): Uint8Array {
  const a = allocPages(bytes.length / PAGE_SIZE);
  a.set(bytes);
  return a;
}

/** Both rounds (old, then new) through an XbzrleEncodeStream, as the bench writes them: 2 MiB records, one block. */
async function streamBytes(oldBuf: Uint8Array, newBuf: Uint8Array): Promise<Uint8Array[]> {
  const round = (buf: Uint8Array): PageRecord[] => {
    const records: PageRecord[] = [];
    for (let off = 0; off < buf.length; off += 2 << 20) records.push({ block: 'pc.ram', offset: off, data: buf.subarray(off, Math.min(off + (2 << 20), buf.length)) });
    return records;
  };
  const { chunks } = await encodeRounds([round(oldBuf), round(newBuf)], { cacheSize: 4 << 20, blocks: [{ id: 'pc.ram', length: oldBuf.length }] });
  return chunks;
}

describe.each(SCENARIOS.map((s) => [s.name, s] as const))('bench scenario %s', (_name, scenario) => {
  const { old: oldBuf, new: newBuf } = generate(scenario, SIZE);
  const out = new Uint8Array(PAGE_SIZE);

  it.skipIf(cc === null)('TS, SIMD and SIMD-alloc give the C baseline’s output byte for byte', () => {
    const files = baselineFiles(dir);
    writeFileSync(files.old, oldBuf);
    writeFileSync(files.new, newBuf);
    const c = runBaseline(cc!, files, 0, true);
    expect(c.roundtripErrors, 'the C encoder’s own round trip (a bug in bench/baseline.c)').toBe(0);
    const want = readFileSync(files.dump);

    const oldA = inKernel(oldBuf);
    const newA = inKernel(newBuf);
    const outA = allocPages(1);
    try {
      const outputs = {
        TS: dump(encodeTs, oldBuf, newBuf, out),
        SIMD: dump(encodeXbzrle, oldBuf, newBuf, out),
        'SIMD-alloc': dump(encodeXbzrle, oldA, newA, outA),
      };
      for (const [label, got] of Object.entries(outputs)) expect(firstDifference(label, got, want)).toBe('');
    } finally {
      freePages(oldA);
      freePages(newA);
      freePages(outA);
    }
  });

  it('TS and SIMD agree, and every delta decodes to the new page (ordinary and allocPages pages)', () => {
    const simd = dump(encodeXbzrle, oldBuf, newBuf, out);
    expect(firstDifference('SIMD', simd, dump(encodeTs, oldBuf, newBuf, out))).toBe('');
    const work = new Uint8Array(oldBuf);
    const workA = inKernel(oldBuf);
    try {
      pages(simd).forEach(({ result, delta }, i) => {
        if (result <= 0) return;
        const at = i * PAGE_SIZE;
        const want = newBuf.subarray(at, at + PAGE_SIZE);
        const page = work.subarray(at, at + PAGE_SIZE);
        const pageA = workA.subarray(at, at + PAGE_SIZE);
        expect(decodeXbzrle(delta, pageA), `page ${i}: the result in allocPages memory`).toBe(decodeXbzrle(delta, page));
        expect(Buffer.compare(page, want), `page ${i} after decoding`).toBe(0);
        expect(Buffer.compare(pageA, want), `page ${i} after decoding in allocPages memory`).toBe(0);
      });
    } finally {
      freePages(workA);
    }
  });

  it('the streams give the same bytes from ordinary and allocPages records, and rebuild the new buffer', async () => {
    const chunks = await streamBytes(oldBuf, newBuf);
    const oldA = inKernel(oldBuf);
    const newA = inKernel(newBuf);
    try {
      expect(Buffer.concat(await streamBytes(oldA, newA)).equals(Buffer.concat(chunks))).toBe(true);
    } finally {
      freePages(oldA);
      freePages(newA);
    }
    const { dec } = await decodeChunks(chunks, { emitPages: false });
    const image = (dec.store as MemoryPageStore).read('pc.ram');
    expect(image.length).toBe(newBuf.length);
    expect(Buffer.compare(image, newBuf)).toBe(0);
  });
});
