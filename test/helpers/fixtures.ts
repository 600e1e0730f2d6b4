/**
 * The gzip-compressed fixtures, decompressed once per `vitest run` instead of once per test
 * file: the first file that asks for one writes its bytes into a folder made by the global
 * setup (`test/helpers/fixtures-setup.ts`); later files, in any worker, read them back. The
 * QEMU 7.2 mixed-c8m capture alone took ~1.3 s to gunzip, and about ten files load it.
 * Without that folder (a config without the setup) each call decompresses.
 */
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { inject } from 'vitest';

/** `gunzipSync(readFileSync(path))`, through the run's cache of decompressed fixtures. */
export function gunzipFile(path: string): Buffer {
  const dir = inject('gunzipCache');
  if (dir === undefined || dir === '') return gunzipSync(readFileSync(path));
  const full = resolve(path);
  const cached = join(dir, `${createHash('sha1').update(full).digest('hex').slice(0, 12)}-${basename(full, '.gz')}`);
  try {
    return readFileSync(cached);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const bytes = gunzipSync(readFileSync(full));
  // Written aside and renamed: a file running at the same time reads a whole copy or none.
  const part = `${cached}.${process.pid}.part`;
  writeFileSync(part, bytes);
  renameSync(part, cached);
  return bytes;
}

declare module 'vitest' {
  export interface ProvidedContext {
    /** Folder of the run's decompressed fixtures (test/helpers/fixtures-setup.ts). */
    gunzipCache: string;
  }
}
