/**
 * `instanceof XbzrleError` across copies of the package in one process: the
 * Node and web bundles, ESM and CommonJS, each with its own class (a user
 * importing `xbzrle` in one module and `xbzrle/web` or `require('xbzrle')` in
 * another). Runs on the built bundles (`npm test` builds first).
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { XbzrleError as SourceError } from '../lib/errors.js';

// (Loaded by URL: the type check runs beside the build, before dist/ exists on a fresh clone.)
const node = (await import(new URL('../dist/index.js', import.meta.url).href)) as typeof import('../lib/index.js');
const web = (await import(new URL('../dist/web.js', import.meta.url).href)) as typeof import('../lib/web/index.js');
const cjs = createRequire(import.meta.url)('../dist/index.cjs') as typeof node;

describe('XbzrleError across bundles', () => {
  const classes = { node: node.XbzrleError, web: web.XbzrleError, cjs: cjs.XbzrleError, source: SourceError };

  it('an error made by any copy is an instance of every copy\'s class, and keeps its code and offset', () => {
    expect(new Set(Object.values(classes)).size).toBe(4); // four distinct classes
    for (const [from, Make] of Object.entries(classes)) {
      const err = new Make('ERR_RAM_TRUNCATED', `from ${from}`, { offset: 7 });
      for (const [to, Class] of Object.entries(classes)) expect(err instanceof Class, `${from} -> ${to}`).toBe(true);
      expect(err instanceof Error).toBe(true);
      expect([err.code, err.offset, err.name]).toEqual(['ERR_RAM_TRUNCATED', 7, 'XbzrleError']);
    }
  });

  it('other errors and values are not', () => {
    for (const Class of Object.values(classes)) {
      for (const v of [new Error('x'), Object.assign(new Error('x'), { code: 'ERR_RAM_TRUNCATED' }), { name: 'XbzrleError', code: 'ERR_RAM_TRUNCATED' }, null, 'XbzrleError', 1]) {
        expect(v instanceof Class).toBe(false);
      }
    }
  });

  it('a subclass keeps the ordinary instanceof', () => {
    class Sub extends node.XbzrleError {}
    expect(new Sub('ERR_RAM_TRUNCATED', 'x') instanceof Sub).toBe(true);
    expect(new node.XbzrleError('ERR_RAM_TRUNCATED', 'x') instanceof Sub).toBe(false);
    expect(new Sub('ERR_RAM_TRUNCATED', 'x') instanceof web.XbzrleError).toBe(true);
  });
});
