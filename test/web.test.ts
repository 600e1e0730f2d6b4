import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo } from 'node:net';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryPageStore, PageCache, XbzrleDecoderStream, XbzrleEncoderStream, XbzrleError, type WebDecodedPage } from '../lib/web/index.js';
import { concat, randomBytes, rng, sameBytes, split } from './helpers/bytes.js';
import { CHROMIUM, launchChromium } from './helpers/chromium.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WEB_ESM = join(ROOT, 'dist/web.js');
const WEB_CJS = join(ROOT, 'dist/web.cjs');
const PS = 4096;

async function readAll<T>(stream: ReadableStream<T>): Promise<T[]> {
  const out: T[] = [];
  const reader = stream.getReader();
  for (let r = await reader.read(); !r.done; r = await reader.read()) out.push(r.value);
  return out;
}

describe('xbzrle/web in Node (global Web Streams)', () => {
  it('round-trips rounds through XbzrleEncoderStream and XbzrleDecoderStream, split anywhere', async () => {
    const rand = rng(8);
    const a = randomBytes(32 * PS, rand);
    const b = a.slice();
    for (let i = 0; i < b.length; i += 777) b[i] = b[i]! ^ 3;
    const enc = new XbzrleEncoderStream({ blocks: [{ id: 'ram', length: a.length }] });
    const w = enc.writable.getWriter();
    void w.write({ block: 'ram', offset: 0, data: a });
    void w.write('sync');
    void w.write({ block: 'ram', offset: 0, data: b });
    void w.close();
    const bytes = concat(await readAll(enc.readable));
    expect(enc.stats.records).toMatchObject({ PAGE: 32, XBZRLE: 32, MEM_SIZE: 1, EOS: 2 });
    for (const how of ['whole', 'random'] as const) {
      const store = new MemoryPageStore();
      const dec = new XbzrleDecoderStream({ store });
      const input = new ReadableStream<Uint8Array>({
        start(c) {
          for (const chunk of split(bytes, how, 2, 300)) c.enqueue(chunk);
          c.close();
        },
      });
      const pages = await readAll(input.pipeThrough(dec));
      expect(pages).toHaveLength(64);
      expect(sameBytes(store.read('ram'), b)).toBe(true);
      expect(dec.blocks).toEqual([{ id: 'ram', length: a.length }]);
    }
  });

  it('errors the stream with an XbzrleError for bad input and bad records', async () => {
    const dec = new XbzrleDecoderStream();
    const w = dec.writable.getWriter();
    void w.write(new Uint8Array([0, 0, 0, 0, 0, 0, 0, 1])).catch(() => {});
    void w.close().catch(() => {});
    const err = await readAll(dec.readable).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(XbzrleError);
    expect((err as XbzrleError).code).toBe('ERR_RAM_UNKNOWN_FLAGS');
    const enc = new XbzrleEncoderStream();
    const we = enc.writable.getWriter();
    void we.write({ block: 'ram', offset: 3, data: new Uint8Array(PS) }).catch(() => {});
    const err2 = await readAll(enc.readable).catch((e: unknown) => e);
    expect((err2 as XbzrleError).code).toBe('ERR_INVALID_RECORD');
  });

  it('keeps output bounded inside one huge record while the reader waits', async () => {
    const enc = new XbzrleEncoderStream({ cacheSize: 1 << 20 });
    const w = enc.writable.getWriter();
    void w.write({ block: 'ram', offset: 0, data: randomBytes(8 << 20, rng(4)) });
    void w.close();
    const reader = enc.readable.getReader();
    await new Promise((r) => setTimeout(r, 100)); // the reader is away
    let total = 0;
    let maxQueued = 0;
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      total += r.value.length;
      // What the stream holds now, beyond what was read: the queue is bounded by its high-water mark (plus one chunk).
      maxQueued = Math.max(maxQueued, enc.stats.transferred - total);
    }
    expect(total).toBeGreaterThan(8 << 20);
    expect(maxQueued).toBeLessThan(64 * 1024 + 2 * 70 * 1024);
  });

  describe('cancel and abort', () => {
    it('an abort while a write waits for a reader that is not reading settles both, and empties a shared cache', async () => {
      const cache = new PageCache({ size: 1 << 20 });
      const enc = new XbzrleEncoderStream({ cache, readableHighWaterMark: 1 });
      const w = enc.writable.getWriter();
      const written = w.write({ block: 'ram', offset: 0, data: randomBytes(64 * PS, rng(12)) });
      await new Promise((r) => setTimeout(r, 20)); // the write waits: nobody reads
      expect(cache.count).toBeGreaterThan(0);
      const aborted = w.abort(new Error('sender gave up'));
      const outcome = await Promise.race([Promise.allSettled([written, aborted]).then(() => 'settled'), new Promise((r) => setTimeout(() => r('pending'), 1000))]);
      expect(outcome).toBe('settled');
      await expect(written).rejects.toThrow('sender gave up');
      expect(cache.count).toBe(0);
      cache.dispose();
    });


    it('stops a huge record and gives the kernel memory back when the reader cancels', async () => {
      const { getEngine } = await import('../lib/codec/wasm/engine.js');
      const engine = getEngine();
      const enc = new XbzrleEncoderStream({ cacheSize: 1 << 20 });
      const w = enc.writable.getWriter();
      const written = w.write({ block: 'ram', offset: 0, data: randomBytes(8 << 20, rng(6)) });
      const reader = enc.readable.getReader();
      await reader.read(); // encoding started, and paused at the high-water mark
      const encodedAtCancel = enc.stats.transferred;
      const during = engine?.allocated ?? 0;
      await reader.cancel('not needed');
      const outcome = await Promise.race([written.then(() => 'resolved', () => 'rejected'), new Promise((r) => setTimeout(() => r('pending'), 1000))]);
      expect(outcome).toBe('rejected');
      expect(enc.stats.transferred).toBe(encodedAtCancel); // no page encoded after the cancel
      if (engine !== null) expect(during - engine.allocated).toBeGreaterThanOrEqual((1 << 20) + 64 * PS); // cache and staging area released
    });

    it('a shared cache keeps its pages only once the reader took every chunk; cancelled after close, or aborted, it is emptied', async () => {
      const page = { block: 'ram', offset: 0, data: new Uint8Array(PS).fill(1) };
      // Read to the end: kept.
      const cache = new PageCache({ size: 1 << 20 });
      const enc1 = new XbzrleEncoderStream({ cache });
      const w1 = enc1.writable.getWriter();
      void w1.write(page);
      void w1.close();
      await readAll(enc1.readable);
      expect(cache.count).toBe(1);
      // Closed, then the reader cancels before reading: emptied.
      const enc2 = new XbzrleEncoderStream({ cache });
      const w2 = enc2.writable.getWriter();
      void w2.write(page);
      await w2.close();
      expect(cache.count).toBe(1);
      await enc2.readable.cancel('gone');
      expect(cache.count).toBe(0);
      // The writer aborts with nobody reading: emptied too.
      const cache3 = new PageCache({ size: 1 << 20 });
      const enc3 = new XbzrleEncoderStream({ cache: cache3 });
      const w3 = enc3.writable.getWriter();
      await w3.write(page);
      expect(cache3.count).toBe(1);
      await w3.abort(new Error('sender gave up'));
      await new Promise((r) => setTimeout(r, 20));
      expect(cache3.count).toBe(0);
    });

    it('a reader that cancels errors the writable side at once: an idle piped source is cancelled, writer.closed rejects', async () => {
      for (const make of [() => new XbzrleEncoderStream(), () => new XbzrleDecoderStream()] as const) {
        let sourceCancelled = false;
        const source = new ReadableStream<never>({
          pull: () => new Promise<void>(() => {}),
          cancel() {
            sourceCancelled = true;
          },
        });
        const out = source.pipeThrough(make() as unknown as TransformStream<never, unknown>);
        await out.cancel(new Error('reader gone'));
        const s2 = make();
        const w = (s2.writable as WritableStream<never>).getWriter();
        const closed = w.closed.then(() => 'resolved', () => 'rejected');
        await s2.readable.cancel(new Error('reader gone'));
        const outcome = await Promise.race([closed, new Promise((r) => setTimeout(() => r('pending'), 1000))]);
        expect(outcome).toBe('rejected');
        await new Promise((r) => setTimeout(r, 20));
        expect(sourceCancelled).toBe(true);
      }
    });

    it('stops decoding when the reader cancels', async () => {
      const enc = new XbzrleEncoderStream();
      const w = enc.writable.getWriter();
      void w.write({ block: 'ram', offset: 0, data: randomBytes(256 * PS, rng(7)) });
      void w.close();
      const bytes = concat(await readAll(enc.readable));
      const dec = new XbzrleDecoderStream({ readableHighWaterMark: 1 });
      const dw = dec.writable.getWriter();
      const written = dw.write(bytes);
      const reader = dec.readable.getReader();
      await reader.read();
      await reader.cancel();
      const outcome = await Promise.race([written.then(() => 'resolved', () => 'rejected'), new Promise((r) => setTimeout(() => r('pending'), 1000))]);
      expect(outcome).toBe('rejected');
      expect(dec.stats.records.PAGE).toBeLessThan(256);
    });
  });

  it('a readable high-water mark of 0 still lets the streams run (taken as 1)', async () => {
    const data = randomBytes(64 * PS, rng(8));
    const enc = new XbzrleEncoderStream({ readableHighWaterMark: 0 });
    const w = enc.writable.getWriter();
    void w.write({ block: 'ram', offset: 0, data });
    void w.close();
    const store = new MemoryPageStore();
    const pages = await readAll(enc.readable.pipeThrough(new XbzrleDecoderStream({ store, readableHighWaterMark: 0 })));
    expect(pages).toHaveLength(64);
    expect(sameBytes(store.read('ram'), data)).toBe(true);
  });

  it('emits pages that are copies the consumer may keep', async () => {
    const enc = new XbzrleEncoderStream();
    const w = enc.writable.getWriter();
    void w.write({ block: 'ram', offset: 0, data: new Uint8Array(PS).fill(1) });
    void w.write('sync');
    void w.write({ block: 'ram', offset: 0, data: new Uint8Array(PS).fill(2) });
    void w.close();
    const pages: WebDecodedPage[] = await readAll(enc.readable.pipeThrough(new XbzrleDecoderStream()));
    expect(pages.map((p) => [p.kind, p.data[0]])).toEqual([
      ['page', 1],
      ['page', 2], // every byte changed: an overflow sent as PAGE
    ]);
  });
});

describe('xbzrle/web imports nothing from Node', () => {
  beforeAll(() => {
    if (!existsSync(WEB_ESM)) throw new Error(`${WEB_ESM} is missing: run npm run build (npm test does)`);
  });

  it('the built bundles name no Node module and never use Buffer', () => {
    for (const file of [WEB_ESM, WEB_CJS]) {
      const code = readFileSync(file, 'utf8');
      expect(code).not.toMatch(/["'`]node:/);
      expect(code).not.toMatch(/require\(["'`](?:fs|net|stream|buffer|path|os|crypto|zlib|readable-stream)/);
      // (ESM: a static or dynamic import of the same modules without the `node:` prefix, which the line above catches.)
      expect(code).not.toMatch(/(?:\bfrom|\bimport\s*\()\s*["'`](?:fs|net|stream|buffer|path|os|crypto|zlib|readable-stream)(?:\/[a-z]+)?["'`]/);
      expect(code).not.toMatch(/(?<![A-Za-z_$.])Buffer\s*[.(]/);
    }
  });

  it('encodes and decodes byte-identically on plain WebAssembly memory (a page without cross-origin isolation) as on the TypeScript path', () => {
    // Deterministic pairs of every page size the staging area takes (and one it does not),
    // every output length class, digested; run once on the plain-memory kernel and once
    // with the kernel off.
    const script = `
      if (process.argv[1] === 'plain') globalThis.crossOriginIsolated = false;
      const x = await import(${JSON.stringify(WEB_ESM)});
      let seed = 7, h = 0x811c9dc5;
      const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8;
      const mix = (v) => { h = Math.imul(h ^ (v & 0xff), 0x01000193) >>> 0; };
      let calls = 0, decodes = 0;
      for (const size of [64, 100, 4096, 16384, 32768, 65536]) {
        for (let t = 0; t < 12; t++) {
          const prev = new Uint8Array(size).map(() => rnd() & 0xff);
          const cur = t % 4 === 0 ? prev.map((b) => b ^ 0x5a) : prev.slice();
          for (let e = 0; e < t * 3; e++) { const at = rnd() % size; for (let i = at; i < Math.min(size, at + (rnd() % 70)); i++) cur[i] ^= 1 + (i % 7); }
          for (const olen of [0, 1, 2, 17, size >> 4, size, 2 * size + 8]) {
            const out = new Uint8Array(olen + 3).fill(0xee).subarray(1, 1 + olen);
            let n;
            try { n = x.encodeXbzrle(prev.subarray(0), cur, out); } catch (e) { n = e.code === 'ERR_XBZRLE_UNENCODABLE' ? -2 - e.offset : -999; }
            calls++;
            mix(n); mix(n >> 8);
            for (let i = 0; i < Math.max(n, 0); i++) mix(out[i]);
            const back = new Uint8Array(out.buffer); mix(back[0]); mix(back[olen + 1]); mix(back[olen + 2]);
            if (olen === 2 * size + 8 && n > 0) {
              // Decode it back (long deltas go through the kernel's staging area), whole and corrupted.
              for (const corrupt of [false, true]) {
                const delta = out.slice(0, n);
                if (corrupt) delta[rnd() % n] ^= 1 + (rnd() % 255);
                const page = prev.slice();
                let r;
                try { r = x.decodeXbzrle(delta, page); } catch (e) { r = e.code === 'ERR_XBZRLE_CORRUPT' ? -1 - e.offset : -999; }
                decodes++;
                mix(r); mix(r >> 8);
                for (let i = 0; i < size; i++) mix(page[i]);
              }
            }
          }
        }
      }
      const pages = x.allocPages(1);
      const engines = Object.getOwnPropertySymbols(globalThis).filter((s) => String(s.description).startsWith('xbzrle.engine.')).map((s) => globalThis[s]);
      console.log(JSON.stringify({ hash: h, calls, decodes, engine: engines.length === 1 && engines[0] !== null, shared: typeof SharedArrayBuffer !== 'undefined' && pages.buffer instanceof SharedArrayBuffer }));
    `;
    const run = (mode: string, env: Record<string, string>) => {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, mode], { encoding: 'utf8', env: { ...process.env, ...env } });
      expect(r.stderr).toBe('');
      return JSON.parse(r.stdout) as { hash: number; calls: number; decodes: number; engine: boolean; shared: boolean };
    };
    const plain = run('plain', {});
    const ts = run('ts', { XBZRLE_WASM: '0' });
    expect(plain.engine).toBe(true); // a kernel on plain memory, not the TypeScript path
    expect(plain.shared).toBe(false);
    expect(ts.engine).toBe(false);
    expect(plain.calls).toBe(6 * 12 * 7);
    expect(plain.decodes).toBeGreaterThan(100);
    expect(plain.hash).toBe(ts.hash);
  });

  it('works in a Node process where Buffer was deleted', () => {
    const script = `
      delete globalThis.Buffer;
      const x = await import(${JSON.stringify(WEB_ESM)});
      const img = new Uint8Array(16 * 4096).map((_, i) => (i * 13) & 0xff);
      const img2 = img.slice(); img2[5000] ^= 1;
      const enc = new x.XbzrleEncoderStream();
      const w = enc.writable.getWriter();
      w.write({ block: 'ram', offset: 0, data: img }); w.write('sync'); w.write({ block: 'ram', offset: 0, data: img2 }); w.close();
      const store = new x.MemoryPageStore();
      const r = enc.readable.pipeThrough(new x.XbzrleDecoderStream({ store })).getReader();
      while (!(await r.read()).done);
      const got = store.read('ram');
      console.log(JSON.stringify({ buffer: typeof Buffer, equal: got.every((v, i) => v === img2[i]), records: enc.stats.records }));
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { buffer: string; equal: boolean; records: { XBZRLE: number } };
    expect(out).toMatchObject({ buffer: 'undefined', equal: true });
    expect(out.records.XBZRLE).toBe(1);
  });
});

describe.skipIf(CHROMIUM === undefined)('xbzrle/web in headless Chromium', () => {
  let server: Server;
  let url = '';
  beforeAll(async () => {
    const types: Record<string, string> = { '.js': 'text/javascript', '.html': 'text/html', '.map': 'application/json' };
    server = createServer((req, res) => {
      const path = req.url === '/' ? '/test/browser/page.html' : (req.url ?? '/').split('?')[0]!;
      const file = join(ROOT, path);
      if (!file.startsWith(ROOT) || !existsSync(file) || !(path.startsWith('/dist/') || path.startsWith('/test/browser/'))) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterAll(() => {
    server?.close();
  });

  it('encodes and decodes on a page, with no Buffer in sight', async () => {
    const browser = await launchChromium(['--disable-quic']);
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto(url);
      const result = (await page.waitForFunction(() => (globalThis as { __result?: unknown }).__result, undefined, { timeout: 30_000 })).jsonValue();
      const out = (await result) as { ok: boolean; equal: boolean; kinds: Record<string, number>; badError: string; hasBuffer: boolean; cancelled: string; error?: string };
      expect(errors).toEqual([]);
      expect(out.error).toBeUndefined();
      expect(out).toMatchObject({ ok: true, equal: true, badError: 'ERR_RAM_UNKNOWN_FLAGS', hasBuffer: false, cancelled: 'rejected' });
      expect(out.kinds['xbzrle']).toBeGreaterThan(0);
      expect(out.kinds['zero']).toBe(4);
    } finally {
      await browser.close();
    }
  }, 60_000);
});
