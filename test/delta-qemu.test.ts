import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diffImages, patchImage, verifyDelta } from '../lib/delta/index.js';
import { RamRecordParser } from '../lib/format/record-parser.js';
import { XbzrleError } from '../lib/errors.js';
import { gunzipFile } from './helpers/fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'delta-qemu-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const p = (n: string): string => join(dir, n);
const FIX = join(__dirname, 'fixtures', 'qemu-7.2');

beforeAll(() => {
  // two real 32 MiB guest RAM images rebuilt by QEMU 7.2 from the captures
  writeFileSync(p('a'), gunzipFile(join(FIX, 'sparse-c32m.pc.ram.gz')));
  writeFileSync(p('b'), gunzipFile(join(FIX, 'mixed-c8m.pc.ram.gz')));
});

describe("format 'qemu' and the QEMU 7.2 fixtures", () => {
  it("format 'qemu' writes a plain RAM record stream that QEMU's framing reader takes, and patch applies it", async () => {
    const st = await diffImages(p('a'), p('b'), p('plain'), { format: 'qemu' });
    expect(st.format).toBe('qemu');
    const bytes = readFileSync(p('plain'));
    expect(bytes.subarray(0, 8).toString('hex')).toBe('0000000002000004'); // MEM_SIZE of 32 MiB
    const parser = new RamRecordParser({ pageSize: 4096 });
    parser.push(bytes);
    const kinds: Record<string, number> = {};
    for (let r = parser.next(); r !== null; r = parser.next()) kinds[r.kind] = (kinds[r.kind] ?? 0) + 1;
    expect(parser.atEos).toBe(true);
    expect(kinds).toMatchObject({ mem_size: 1, eos: 1, zero: st.zero, page: st.page, xbzrle: st.xbzrle });
    const v = await verifyDelta(p('plain'));
    expect(v.format).toBe('qemu');
    expect(v).toMatchObject({ zero: st.zero, page: st.page, xbzrle: st.xbzrle, newSize: 32 << 20, deltaBytes: bytes.length });
    const [ps] = await patchImage(p('a'), p('plain'), p('out-plain'));
    expect(ps!.format).toBe('qemu');
    expect(Buffer.compare(readFileSync(p('out-plain')), readFileSync(p('b')))).toBe(0);
  });

  it('the xbzrle format on the same images: smaller, checked, same result', async () => {
    const st = await diffImages(p('a'), p('b'), p('delta'));
    expect(st.deltaBytes).toBeLessThan(readFileSync(p('plain')).length);
    const v = await verifyDelta(p('delta'));
    expect(v.format).toBe('xbzrle');
    await patchImage(p('a'), p('delta'), p('out'));
    expect(Buffer.compare(readFileSync(p('out')), readFileSync(p('b')))).toBe(0);
  });

  it('verify of a plain stream refuses a corrupt XBZRLE delta with the error and offset decode gives', async () => {
    const bytes = readFileSync(p('plain'));
    const parser = new RamRecordParser({ pageSize: 4096 });
    parser.push(bytes);
    let at = -1;
    for (let r = parser.next(); r !== null && at < 0; r = parser.next()) if (r.kind === 'xbzrle' && r.length > 4) at = r.dataPosition;
    expect(at).toBeGreaterThan(0);
    const bad = Buffer.from(bytes);
    bad[at] = 0xff; // a zero run's ULEB128 that runs past the page
    bad[at + 1] = 0xff;
    bad[at + 2] = 0x7f;
    writeFileSync(p('plain-bad'), bad);
    const err = (await verifyDelta(p('plain-bad')).catch((e: unknown) => e)) as XbzrleError;
    expect(err).toBeInstanceOf(XbzrleError);
    expect(err.code).toBe('ERR_XBZRLE_CORRUPT');
    const { XbzrleDecodeStream } = await import('../lib/stream/decode-stream.js');
    const dec = new XbzrleDecodeStream({ emitPages: false });
    const decErr = await new Promise<XbzrleError>((resolve) => {
      dec.on('error', (e) => resolve(e as XbzrleError));
      dec.on('finish', () => resolve(new XbzrleError('ERR_RAM_TRUNCATED', 'no error')));
      dec.end(bad);
    });
    expect(err.offset).toBe(decErr.offset);
  });
});
