/**
 * The published types, as a TypeScript user meets them: the packed tarball in
 * an empty project with only `typescript` and `@types/node` next to it (no
 * `@types/readable-stream`), `tsc --strict` with `skipLibCheck` false and true,
 * on ESM (`.mts`) and CommonJS (`.cts`) consumers of each part of the API, and
 * on an `xbzrle/web` consumer with the DOM libs and no Node types.
 *
 * Each case is one source compiled both as `.mts` and `.cts` (it has no
 * top-level await), in one program per configuration. A case passes when
 * neither its files nor the package's declarations have a diagnostic. The
 * `IsAny` checks make sure records are typed, not merely accepted.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPackedProject, type Diagnostic, type PackedProject } from './helpers/packed-project.js';

const IS_ANY = 'type IsAny<T> = 0 extends 1 & T ? true : false;\n';

/** Node consumers: case name → source (valid as ESM and as CommonJS). */
const NODE_CASES: Record<string, string> = {
  codec: `
import { decodeXbzrle, encodeXbzrle, isZeroPage, XbzrleError, type XbzrleErrorCode } from 'xbzrle';

export function roundTrip(oldPage: Uint8Array, newPage: Uint8Array): Uint8Array | null {
  const out = new Uint8Array(4096);
  const n: number = encodeXbzrle(oldPage, newPage, out);
  if (n <= 0 || isZeroPage(newPage)) return null;
  const page = oldPage.slice();
  try {
    const end: number = decodeXbzrle(out.subarray(0, n), page);
    void end;
  } catch (err) {
    if (err instanceof XbzrleError) {
      const code: XbzrleErrorCode = err.code;
      const offset: number | undefined = err.offset;
      void code, offset;
    }
    throw err;
  }
  return page;
}
`,

  streams: `
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { PassThrough, Readable, Writable, pipeline as pipelineCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  MemoryPageStore,
  XbzrleDecodeStream,
  XbzrleEncodeStream,
  createXbzrleDecodeStream,
  createXbzrleEncodeStream,
  type DecodedPage,
  type DecodedPageKind,
  type PageRecord,
  type XbzrleStatsJSON,
} from 'xbzrle';
${IS_ANY}
export async function sender(socket: Socket, ram: Uint8Array): Promise<XbzrleStatsJSON> {
  const enc = new XbzrleEncodeStream({ blocks: [{ id: 'pc.ram', length: ram.length }], cacheSize: 64 << 20 });
  enc.pipe(socket);
  const record: PageRecord = { block: 'pc.ram', offset: 0, data: ram };
  const ok: boolean = enc.write(record);
  enc.write({ block: 'pc.ram', offset: 0x3000, data: ram.subarray(0, 4096) }, (err) => {
    if (err) console.error(err.message);
  });
  enc.sync();
  enc.sync({ final: true }, (err) => void err);
  enc.end();
  enc.on('data', (chunk) => {
    const notAny: IsAny<typeof chunk> = false;
    const bytes: Uint8Array = chunk;
    void notAny, bytes;
  });
  enc.on('error', (err) => console.error(err.message));
  enc.once('finish', () => undefined);
  const size: number = enc.setCacheSize(1 << 20) + enc.pageSize + enc.cache.size;
  void ok, size;
  await once(enc, 'end');
  return enc.stats.toJSON();
}

export async function throughPipeline(records: PageRecord[], socket: Socket): Promise<void> {
  await pipeline(Readable.from(records), createXbzrleEncodeStream({ chunkSize: 1 << 16 }), socket);
  await pipeline(records, new XbzrleEncodeStream(), new PassThrough(), socket);
  pipelineCallback(Readable.from(records), new XbzrleEncodeStream(), socket, (err) => {
    if (err) console.error(err.message);
  });
  for await (const chunk of Readable.from(records).pipe(new XbzrleEncodeStream())) {
    const notAny: IsAny<typeof chunk> = false;
    socket.write(chunk);
    void notAny;
  }
}

export async function receiver(socket: Socket): Promise<Uint8Array> {
  const store = new MemoryPageStore();
  const dec = new XbzrleDecodeStream({ store });
  dec.on('data', ({ block, offset, kind, data }) => {
    const notAny: IsAny<typeof data> = false;
    const b: string = block;
    const o: number = offset;
    const k: 'page' | 'zero' | 'xbzrle' = kind;
    const d: Buffer = data;
    void notAny, b, o, k, d;
  });
  dec.once('data', (page: DecodedPage) => void page);
  dec.on('close', () => undefined);
  await pipeline(socket, dec);
  await pipeline(socket, createXbzrleDecodeStream({ emitPages: false }), new Writable({ objectMode: true }));
  await pipeline(socket, new XbzrleDecodeStream(), async function* (pages) {
    for await (const page of pages) yield page;
  }, new Writable({ objectMode: true }));
  await pipeline(socket, new XbzrleDecodeStream(), async (pages: AsyncIterable<DecodedPage>) => {
    for await (const page of pages) void page.kind;
  });
  pipelineCallback(socket, new XbzrleDecodeStream({ allowTrailingData: true }), (err) => void err);
  for await (const page of socket.pipe(new XbzrleDecodeStream())) {
    const notAny: IsAny<typeof page> = false;
    const kind: DecodedPageKind = page.kind;
    // @ts-expect-error pages are records, not bytes
    const bytes: Uint8Array = page;
    void notAny, kind, bytes;
  }
  const first: DecodedPage | null = dec.read();
  const ok: boolean = dec.write(new Uint8Array(8));
  dec.end();
  void first, ok;
  const blocks = dec.blocks;
  const trailing: number = dec.trailingBytes;
  void blocks, trailing, dec.pageSize, dec.store;
  return store.read('pc.ram');
}
`,

  iterators: `
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { decodeRecords, encodeRounds, type DecodedPage, type PageRecord, type RoundItem, type XbzrleStats } from 'xbzrle';
${IS_ANY}
export async function rounds(round1: PageRecord[], round2: PageRecord[], out: NodeJS.WritableStream): Promise<void> {
  const items: RoundItem[] = [round1, 'sync', ...round2, 'final'];
  const gen = encodeRounds(items, { cacheSize: 1 << 20 });
  for await (const chunk of gen) {
    const notAny: IsAny<typeof chunk> = false;
    const bytes: Uint8Array = chunk;
    out.write(bytes);
    void notAny;
  }
  const stats: XbzrleStats = gen.stats;
  void stats.toJSON();
  const pages = decodeRecords(createReadStream('rounds.xs'), { allowTrailingData: true });
  for await (const page of pages) {
    const notAny: IsAny<typeof page> = false;
    const p: DecodedPage = page;
    void notAny, p;
  }
  const last = await pages.next();
  if (last.done === true) void last.value.toJSON();
  await pipeline(Readable.from([round1]), async function* (source: AsyncIterable<RoundItem>) {
    yield* encodeRounds(source);
  }, out);
}
`,

  qemu: `
import { createReadStream } from 'node:fs';
import { FilePageStore, MemoryPageStore, readQemuMigration, type QemuMigrationInfo } from 'xbzrle';

export async function inspect(file: string): Promise<QemuMigrationInfo> {
  const info = await readQemuMigration(file, { store: new FilePageStore({ dir: 'ram' }) });
  console.log(info.machine, info.blocks, info.sections, info.stoppedAt, info.stats.toJSON());
  const again = await readQemuMigration(createReadStream(file), { store: new MemoryPageStore() });
  const fromBytes = await readQemuMigration(new Uint8Array(0));
  const normal: number = again.stats.toJSON().ram.normal + fromBytes.pageSize;
  void normal;
  return info;
}
`,

  stats: `
import { XbzrleDecodeStream, XbzrleEncodeStream, XbzrleStats, type XbzrleStatsJSON } from 'xbzrle';

export function report(enc: XbzrleEncodeStream, dec: XbzrleDecodeStream): void {
  enc.on('end', () => {
    const sent: XbzrleStatsJSON = enc.stats.toJSON();
    const received: XbzrleStatsJSON = dec.stats.toJSON();
    const own = new XbzrleStats(4096, { rates: 'qemu' }).toJSON();
    const n: number = own['xbzrle-cache']['cache-miss'] + sent.ram.normal + received['xbzrle-cache'].overflow + received.records.XBZRLE;
    console.log(n, JSON.stringify(enc.stats));
  });
}
`,
};

/** The xbzrle/web consumer (README's example), DOM libs, no Node types. */
const WEB_CASE = `
import { MemoryPageStore, XbzrleDecoderStream, XbzrleEncoderStream, encodeXbzrle, type WebDecodedPage } from 'xbzrle/web';
${IS_ANY}
export async function roundTrip(image: Uint8Array, image2: Uint8Array): Promise<number> {
  const enc = new XbzrleEncoderStream({ blocks: [{ id: 'ram', length: image.length }] });
  const writer = enc.writable.getWriter();
  void writer.write({ block: 'ram', offset: 0, data: image });
  void writer.write('sync');
  void writer.write({ block: 'ram', offset: 0, data: image2 });
  void writer.close();
  const store = new MemoryPageStore();
  let n = 0;
  for await (const { block, offset, kind, data } of enc.readable.pipeThrough(new XbzrleDecoderStream({ store }))) {
    const page: WebDecodedPage = { block, offset, kind, data };
    const notAny: IsAny<typeof data> = false;
    void page, notAny;
    n++;
  }
  const reader = new ReadableStream<Uint8Array>().pipeThrough(new XbzrleDecoderStream()).getReader();
  const first = await reader.read();
  if (first.done !== true) void first.value.block;
  return n + encodeXbzrle(image, image2, new Uint8Array(4096)) + enc.stats.toJSON().ram.normal + store.read('ram').length;
}
`;

const compilerOptions = {
  target: 'ES2022',
  module: 'NodeNext',
  moduleResolution: 'NodeNext',
  strict: true,
  noEmit: true,
  skipLibCheck: false,
  skipDefaultLibCheck: true,
};

const variants = [false, true] as const;
let project: PackedProject | undefined;
/** Diagnostics by program ('node' | 'web') and skipLibCheck. */
const results = new Map<string, Diagnostic[]>();

beforeAll(async () => {
  project = createPackedProject('xbzrle-types-');
  for (const [name, source] of Object.entries(NODE_CASES)) {
    project.write(`node/${name}.mts`, source);
    project.write(`node/${name}.cts`, source);
  }
  project.write('web/web.mts', WEB_CASE);
  project.write('web/web.cts', WEB_CASE);
  project.write('tsconfig.node.json', JSON.stringify({ compilerOptions: { ...compilerOptions, lib: ['ES2022'], types: ['node'] }, include: ['node'] }));
  project.write(
    'tsconfig.web.json',
    JSON.stringify({ compilerOptions: { ...compilerOptions, lib: ['ES2022', 'DOM', 'DOM.Iterable', 'DOM.AsyncIterable'], types: [] }, include: ['web'] }),
  );
  // Two compilers at a time (the machine may be shared); TypeScript's own lib files are
  // not what is under test, so they are not re-checked (skipDefaultLibCheck).
  for (const skip of variants) {
    const [node, web] = await Promise.all([
      project.tsc('tsconfig.node.json', ['--skipLibCheck', String(skip)]),
      project.tsc('tsconfig.web.json', ['--skipLibCheck', String(skip)]),
    ]);
    results.set(`node ${skip}`, node);
    results.set(`web ${skip}`, web);
  }
}, 180_000);

afterAll(() => {
  project?.remove();
});

/** Diagnostics of `files` and of the package's own declarations (what the case pulled in), as text. */
function problems(program: 'node' | 'web', skip: boolean, files: readonly string[]): string[] {
  const all = results.get(`${program} ${skip}`);
  if (all === undefined) throw new Error('tsc did not run');
  return all.filter((d) => files.includes(d.file) || d.file.startsWith('node_modules/') || d.file === '').map((d) => d.text);
}

describe.each(variants)('tsc --strict, skipLibCheck %s', (skip) => {
  it.each(Object.keys(NODE_CASES).flatMap((name) => [`${name}.mts`, `${name}.cts`]))('compiles the Node consumer %s', (file) => {
    expect(problems('node', skip, [`node/${file}`])).toEqual([]);
  });

  it.each(['web.mts', 'web.cts'])('compiles the xbzrle/web consumer %s (DOM libs, no @types/node)', (file) => {
    expect(problems('web', skip, [`web/${file}`])).toEqual([]);
  });

  it('reports nothing anywhere', () => {
    expect(results.get(`node ${skip}`)!.map((d) => d.text)).toEqual([]);
    expect(results.get(`web ${skip}`)!.map((d) => d.text)).toEqual([]);
  });
});

describe('the published declarations', () => {
  it('do not mention readable-stream in code (its types are not installed for consumers)', () => {
    const dist = join(project!.dir, 'node_modules', 'xbzrle', 'dist');
    for (const f of readdirSync(dist).filter((n) => /\.d\.c?ts$/.test(n))) {
      const code = readFileSync(join(dist, f), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
      expect(code, f).not.toMatch(/['"]readable-stream['"]/);
    }
  });
});
