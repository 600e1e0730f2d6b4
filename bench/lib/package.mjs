// The built package (dist/index.js), as the bench scripts measure it: exactly
// the code that is published. Type-checked against the sources (the `xbzrle`
// path of tsconfig.scripts.json).
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** @typedef {typeof import('xbzrle')} Lib */

/** The package root (the folder of package.json). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Where the build puts the ESM entry point. */
export const DIST_ENTRY = join(ROOT, 'dist', 'index.js');

/**
 * Imports dist/index.js; throws an Error saying to build first when it is missing.
 * @returns {Promise<Lib>}
 */
export async function loadPackage() {
  if (!existsSync(DIST_ENTRY)) throw new Error(`${relative(process.cwd(), DIST_ENTRY)} not found: run \`npm run build\` first`);
  return /** @type {Lib} */ (await import(pathToFileURL(DIST_ENTRY).href));
}

/**
 * True when the SIMD kernel is in use in this process (allocPages then hands out shared kernel memory).
 * @param {Lib} lib
 */
export function kernelActive(lib) {
  const probe = lib.allocPages(1);
  const active = probe.buffer instanceof SharedArrayBuffer;
  lib.freePages(probe);
  return active;
}
