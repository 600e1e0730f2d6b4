import { describe, expect, it } from 'vitest';
import { XbzrleError } from '../lib/errors.js';
import { decodeHeader, decodeTrailer, encodeFrameHeader, encodeHeader, encodeTrailer } from '../lib/delta/format.js';
import { loadHasher } from '../lib/delta/hash.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

// The vectors of docs/delta-format.md.
const H1 = '8958425a440d0a1a000100400000100000000000020000000123456789abcdef000000000100000000000003030100000010000000000000f536cfa24c30448c';
const H2 = '8958425a440d0a1a0001004000002000000000000000303900000000000000000000000000002000000000040001000000100000000000000163def96b186aba';
const F0 = '01000000000000000000000300000003743e13ee0c4ee5a55720fe2afb25e2e6';
const T0 = '020000000000000200000000000003e80000000000000001000000000000000200000000000007d0e5fe1e9b4a610511';

describe('delta header, frame header and trailer bytes', () => {
  it('XXH64 is the reference function (seed 0)', async () => {
    const h = await loadHasher();
    expect(h.h64(new Uint8Array(0)).toString(16)).toBe('ef46db3751d8e999');
  });

  it('header: byte-exact, both ways', async () => {
    const h = await loadHasher();
    const a = { version: 1, pageSize: 4096, oldSize: 32 << 20, oldDigest: 0x0123456789abcdefn, newSize: 16 << 20, flags: 3, level: 3, frameSize: 1 << 20 };
    expect(hex(encodeHeader(a, h))).toBe(H1);
    expect(decodeHeader(unhex(H1), h)).toEqual(a);
    const b = { version: 1, pageSize: 8192, oldSize: 12345, oldDigest: null, newSize: 8192, flags: 0, level: 0, frameSize: 1 << 20 };
    expect(hex(encodeHeader(b, h))).toBe(H2);
    expect(decodeHeader(unhex(H2), h)).toEqual(b);
  });

  it('frame header and trailer: byte-exact', async () => {
    const h = await loadHasher();
    expect(hex(encodeFrameHeader(0, 0, new Uint8Array([1, 2, 3]), 3, h))).toBe(F0);
    const t = { frames: 2, rawBytes: 1000, oldDigest: 1n, newDigest: 2n, bodyEnd: 2000 };
    expect(hex(encodeTrailer(t, h))).toBe(T0);
    expect(decodeTrailer(unhex(T0), 2000, h)).toEqual(t);
  });

  it('every flipped header bit is refused with a code', async () => {
    const h = await loadHasher();
    for (let i = 0; i < 64; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const b = unhex(H1);
        b[i] = b[i]! ^ (1 << bit);
        let err: unknown;
        try {
          decodeHeader(b, h);
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(XbzrleError);
        expect(['ERR_DELTA_CORRUPT', 'ERR_DELTA_FORMAT']).toContain((err as XbzrleError).code);
      }
    }
  });

  it('a future version is ERR_DELTA_FORMAT, not corruption', async () => {
    const h = await loadHasher();
    const b = unhex(H1);
    b[9] = 2;
    b.set(unhex(h.h64(b.subarray(0, 56)).toString(16).padStart(16, '0')), 56);
    expect(() => decodeHeader(b, h)).toThrow(expect.objectContaining({ code: 'ERR_DELTA_FORMAT', message: expect.stringContaining('version 2') }));
  });
});
