/**
 * The package as users get it: `npm pack` holds only dist/, README, CHANGELOG,
 * LICENSE (and package.json); the tarball installs into an empty project and
 * works from ESM and CommonJS, for the root and the `xbzrle/web` subpath, and
 * its bin runs.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
let dir = '';
let tarball = '';
let files: string[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'xbzrle-pack-'));
  const out = execFileSync(npm, ['pack', '--json', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const info = JSON.parse(out) as { filename: string; files: { path: string }[] }[];
  tarball = join(dir, info[0]!.filename);
  files = info[0]!.files.map((f) => f.path);
  const project = join(dir, 'consumer');
  execFileSync('mkdir', ['-p', project]);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, version: '1.0.0' }));
  execFileSync(npm, ['install', '--no-audit', '--no-fund', '--prefer-offline', '--no-package-lock', tarball], { cwd: project, stdio: 'ignore' });
}, 120_000);

afterAll(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

const consumer = (): string => join(dir, 'consumer');

describe('the packed package', () => {
  it('contains only dist/, README.md, CHANGELOG.md, LICENSE and package.json', () => {
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) expect(f === 'package.json' || f === 'README.md' || f === 'CHANGELOG.md' || f === 'LICENSE' || f.startsWith('dist/')).toBe(true);
    for (const f of ['dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts', 'dist/web.js', 'dist/web.cjs', 'dist/cli.js', 'dist/cli.cjs', 'LICENSE']) expect(files).toContain(f);
  });

  it('installs with readable-stream as its only dependency', () => {
    const mods = readdirSync(join(consumer(), 'node_modules')).filter((n) => !n.startsWith('.'));
    expect(mods).toContain('xbzrle');
    expect(mods).toContain('readable-stream');
    for (const dev of ['vitest', 'typescript', 'tsup', 'fast-check', 'wabt', 'playwright-core']) expect(mods).not.toContain(dev);
  });

  it('works from ESM (root and xbzrle/web)', () => {
    const script = `
      import { encodeXbzrle, decodeXbzrle, XbzrleEncodeStream } from 'xbzrle';
      import { XbzrleEncoderStream, MemoryPageStore } from 'xbzrle/web';
      const a = new Uint8Array(4096), b = a.slice(); b[7] = 1;
      const out = new Uint8Array(4096); const n = encodeXbzrle(a, b, out);
      decodeXbzrle(out.subarray(0, n), a);
      console.log(n, a[7], typeof XbzrleEncodeStream, typeof XbzrleEncoderStream, typeof MemoryPageStore);
    `;
    expect(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: consumer(), encoding: 'utf8' }).trim()).toBe('3 1 function function function');
  });

  it('works from CommonJS (root and xbzrle/web)', () => {
    const script = `
      const { encodeXbzrle, XbzrleDecodeStream, readQemuMigration } = require('xbzrle');
      const web = require('xbzrle/web');
      const a = new Uint8Array(4096), b = a.slice(); b[4095] = 9;
      console.log(encodeXbzrle(a, b, new Uint8Array(4096)), typeof XbzrleDecodeStream, typeof readQemuMigration, typeof web.XbzrleDecoderStream);
    `;
    expect(execFileSync(process.execPath, ['-e', script], { cwd: consumer(), encoding: 'utf8' }).trim()).toBe('4 function function function');
  });

  it('lets the ESM and CommonJS copies, loaded together, share one page cache and kernel', () => {
    const script = `
      import * as esm from 'xbzrle';
      import * as web from 'xbzrle/web';
      import { createRequire } from 'node:module';
      const cjs = createRequire(import.meta.url)('xbzrle');
      const cache = new cjs.PageCache({ size: 1 << 20 });
      const enc = new web.XbzrleEncoderStream({ cache });
      const img = new Uint8Array(8 * 4096).map((_, i) => (i * 7) & 255);
      const img2 = img.slice(); img2[100] ^= 1;
      const w = enc.writable.getWriter();
      w.write({ block: 'ram', offset: 0, data: img }); w.write('sync');
      w.write({ block: 'ram', offset: 0, data: img2 }); w.close();
      const store = new esm.MemoryPageStore();
      const r = enc.readable.pipeThrough(new web.XbzrleDecoderStream({ store })).getReader();
      while (!(await r.read()).done);
      const same = store.read('ram').every((v, i) => v === img2[i]);
      cjs.freePages(esm.allocPages(2)); // buffers from one copy go back through another
      web.freePages(cjs.allocPages(1));
      const forged = cjs.PageCache.isPageCache({ [Symbol.for('xbzrle.PageCache')]: true, pageSize: 4096 });
      console.log(cjs.PageCache.isPageCache(cache), esm.PageCache.isPageCache(cache), same, enc.stats.records.XBZRLE, forged);
    `;
    expect(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: consumer(), encoding: 'utf8' }).trim()).toBe('true true true 1 false');
  });

  it('provides the xbzrle bin', () => {
    const bin = join(consumer(), 'node_modules', '.bin', 'xbzrle');
    expect(execFileSync(bin, ['--version'], { encoding: 'utf8' })).toMatch(/^xbzrle \d+\.\d+\.\d+/);
  });
});

describe('the published declarations', () => {
  it('leave out members tagged @internal', async () => {
    const { readFile, readdir } = await import('node:fs/promises');
    const files = (await readdir(join(ROOT, 'dist'))).filter((f) => /\.d\.c?ts$/.test(f));
    expect(files.length).toBeGreaterThanOrEqual(4);
    for (const file of files) {
      const text = await readFile(join(ROOT, 'dist', file), 'utf8');
      for (const internal of ['arenaPtr', 'arenaEngine', 'insertFrom', 'markWritten', 'claim', 'resumeOnRead', 'holdUntil']) {
        // A declaration of the member (comments may still mention it).
        expect(text, `${file}: ${internal}`).not.toMatch(new RegExp(`^\\s*(?:protected |readonly |static )*${internal}\\b[?(:<]`, 'm'));
      }
    }
  });
});
