import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RecordWriter } from '../lib/index.js';
import { runMain, scratchFolders } from './helpers/cli.js';

const PS = 4096;
const PAGES = 512;
const dirs = scratchFolders('xbzrle-cli-holes-');

/** A stream of two rounds: every page ZERO but one PAGE in each 64, then every page ZERO again (a live migration resends them). */
function stream(memSize: boolean): { bytes: Uint8Array; image: Uint8Array } {
  const chunks: Uint8Array[] = [];
  const w = new RecordWriter({ pageSize: PS }, (c) => chunks.push(c.slice()));
  if (memSize) w.memSize([{ id: 'ram', length: PAGES * PS }]);
  const image = new Uint8Array(PAGES * PS);
  const data = new Uint8Array(PS).fill(0x5a);
  for (let round = 0; round < 2; round++) {
    for (let p = 0; p < PAGES; p++) {
      if (p % 64 === 63) {
        w.page('ram', p * PS, data, 0);
        image.set(data, p * PS);
      } else w.zero('ram', p * PS, 0);
    }
    w.eos();
  }
  w.flush();
  return { bytes: Buffer.concat(chunks), image };
}

describe('decode leaves zero pages holes', () => {
  for (const memSize of [true, false]) {
    it(`${memSize ? 'with' : 'without'} a block list, also when a round sends them as ZERO again`, async () => {
      const dir = dirs.fresh(memSize ? 'with' : 'without');
      const { bytes, image } = stream(memSize);
      const input = join(dir, 's.xs');
      writeFileSync(input, bytes);
      const out = join(dir, 'out.img');
      const r = await runMain(['decode', input, '-o', out, '--threads', '1', '-q']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(readFileSync(out).equals(Buffer.from(image))).toBe(true);
      // 8 data pages of 512: the rest are holes (not written, not even the second time).
      expect(statSync(out).blocks * 512).toBeLessThan(64 * PS);
    });
  }
});
