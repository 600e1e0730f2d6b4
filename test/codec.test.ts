import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { allocPages, decodeXbzrle, encodeXbzrle, freePages, isZeroPage, XbzrleError } from '../lib/index.js';
import { ulebRead, ulebWrite, ulebLength } from '../lib/codec/uleb128.js';
import { atOffset, hex, rng, sameBytes, toHex } from './helpers/bytes.js';
import { refDecode, refEncode } from './helpers/reference-codec.js';

const PAGE = 4096;

function encodeHex(prev: Uint8Array, cur: Uint8Array, dlen = PAGE): string | number {
  const out = new Uint8Array(dlen);
  const n = encodeXbzrle(prev, cur, out);
  return n > 0 ? toHex(out.subarray(0, n)) : n;
}

function expectCorrupt(fn: () => unknown, offset?: number): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(XbzrleError);
  expect((caught as XbzrleError).code).toBe('ERR_XBZRLE_CORRUPT');
  if (offset !== undefined) expect((caught as XbzrleError).offset).toBe(offset);
}

describe('small ULEB128 lengths (spec §2)', () => {
  it('encodes the table values in their shortest form', () => {
    const table: [number, string][] = [
      [0, '00'], [127, '7f'], [128, '8001'], [255, 'ff01'], [1001, 'e907'], [4095, 'ff1f'], [4096, '8020'], [16383, 'ff7f'],
    ];
    for (const [value, bytes] of table) {
      const out = new Uint8Array(2);
      const n = ulebWrite(out, 0, value);
      expect(toHex(out.subarray(0, n))).toBe(bytes);
    }
  });

  it('round-trips every value 0..0x3FFF with matching lengths', () => {
    const buf = new Uint8Array(2);
    for (let v = 0; v <= 0x3fff; v++) {
      const n = ulebWrite(buf, 0, v);
      expect(n).toBe(ulebLength(v));
      const r = ulebRead(buf, 0);
      expect(r & 0x3fff).toBe(v);
      expect(r >>> 14).toBe(n);
    }
  });

  it('accepts over-long two-byte forms and rejects a set top bit in byte 1', () => {
    expect(ulebRead(hex('8000'), 0)).toBe(0 | (2 << 14));
    expect(ulebRead(hex('8100'), 0) & 0x3fff).toBe(1);
    expect(ulebRead(hex('8500'), 0) & 0x3fff).toBe(5);
    expect(ulebRead(hex('8080'), 0)).toBe(-1);
  });
});

describe('encodeXbzrle: docs/xbzrle.txt example (spec §6.1)', () => {
  const oldPage = new Uint8Array(PAGE);
  const newPage = new Uint8Array(PAGE);
  oldPage.set(hex('05 06 07 08 09 0a 0b 0c 0d 0e 0f 10 11 12 13 68 00 00 6b 00 6d'), 1001);
  newPage.set(hex('01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 68 00 00 67 00 69'), 1001);
  const delta = 'e9070f0102030405060708090a0b0c0d0e0f030167010169';

  it('produces the 24-byte documented delta', () => {
    expect(encodeHex(oldPage, newPage)).toBe(delta);
  });

  it('decodes it into the old page, returning 1022', () => {
    const page = oldPage.slice();
    expect(decodeXbzrle(hex(delta), page)).toBe(1022);
    expect(sameBytes(page, newPage)).toBe(true);
  });
});

describe('encodeXbzrle: QEMU unit-test shapes (spec §6.2)', () => {
  it('returns 0 for a page encoded against itself (encode_decode_zero / unchanged)', () => {
    const page = new Uint8Array(PAGE);
    page[1001] = 3;
    page[1005] = 9;
    expect(encodeXbzrle(page, page, new Uint8Array(PAGE))).toBe(0);
    const other = page.map((v, i) => (i * 7) & 0xff);
    expect(encodeXbzrle(other, other.slice(), new Uint8Array(PAGE))).toBe(0);
  });

  it('encode_decode_1_byte: last byte changed gives ff 1f 01 01, decode returns 4096', () => {
    const oldPage = new Uint8Array(PAGE);
    const newPage = new Uint8Array(PAGE);
    newPage[4095] = 1;
    expect(encodeHex(oldPage, newPage)).toBe('ff1f0101');
    const page = oldPage.slice();
    expect(decodeXbzrle(hex('ff1f0101'), page)).toBe(4096);
    expect(sameBytes(page, newPage)).toBe(true);
  });

  it('encode_decode_overflow: a byte at every even offset overflows', () => {
    const oldPage = new Uint8Array(PAGE);
    const newPage = new Uint8Array(PAGE);
    for (let i = 0; i <= 4092; i += 2) newPage[i] = 1;
    expect(encodeXbzrle(oldPage, newPage, new Uint8Array(PAGE))).toBe(-1);
  });

  function testPages(n: number): [Uint8Array, Uint8Array] {
    const oldPage = new Uint8Array(PAGE);
    const newPage = new Uint8Array(PAGE);
    for (let i = 1; i <= n; i++) {
      newPage[1000 + i] = i & 0xff;
      oldPage[1000 + i] = (i + 4) & 0xff;
    }
    newPage[1000 + n + 3] = 103;
    oldPage[1000 + n + 3] = 107;
    newPage[1000 + n + 5] = 105;
    oldPage[1000 + n + 5] = 109;
    return [oldPage, newPage];
  }

  it.each([
    [0, 'eb07016701 0169', 1006],
    [1, 'e9070101020167010169', 1007],
  ])('encode_decode with diff_len %i gives the exact delta', (n, delta, ret) => {
    const [oldPage, newPage] = testPages(n);
    expect(encodeHex(oldPage, newPage)).toBe(delta.replace(/ /g, ''));
    const page = oldPage.slice();
    expect(decodeXbzrle(hex(delta), page)).toBe(ret);
    expect(sameBytes(page, newPage)).toBe(true);
  });

  it('encode_decode for every diff_len 0..3089 matches the formula', () => {
    for (let n = 0; n <= 3089; n++) {
      const [oldPage, newPage] = testPages(n);
      const out = new Uint8Array(PAGE);
      const len = encodeXbzrle(oldPage, newPage, out);
      const ulen = n < 128 ? 1 : 2;
      if (n === 0) {
        expect(len).toBe(7);
      } else {
        expect(len).toBe(8 + ulen + n);
        const body = [0xe9, 0x07, ...(n < 128 ? [n] : [(n & 0x7f) | 0x80, n >> 7])];
        for (let i = 1; i <= n; i++) body.push(i & 0xff);
        body.push(0x02, 0x01, 0x67, 0x01, 0x01, 0x69);
        expect(toHex(out.subarray(0, len))).toBe(toHex(Uint8Array.from(body)));
      }
      const page = oldPage.slice();
      const ret = decodeXbzrle(out.subarray(0, len), page);
      expect(ret).toBe(1006 + n);
      expect(ret).toBeLessThan(4096);
      expect(sameBytes(page, newPage)).toBe(true);
    }
  });

  it.each([
    [15, 24, 1021],
    [127, 136, 1133],
    [128, 138, 1134],
    [3089, 3099, 4095],
  ])('encode_decode n=%i has L=%i and decode returns %i', (n, L, ret) => {
    const [oldPage, newPage] = testPages(n);
    const out = new Uint8Array(PAGE);
    expect(encodeXbzrle(oldPage, newPage, out)).toBe(L);
    const page = oldPage.slice();
    expect(decodeXbzrle(out.subarray(0, L), page)).toBe(ret);
  });
});

describe('encodeXbzrle: further vectors and the overflow rule (spec §3.2, §6.3)', () => {
  const zero = new Uint8Array(PAGE);

  it('byte 0 changed gives 00 01 09', () => {
    const cur = new Uint8Array(PAGE);
    cur[0] = 9;
    expect(encodeHex(zero, cur)).toBe('000109');
  });

  it('every byte changed overflows', () => {
    expect(encodeXbzrle(zero, new Uint8Array(PAGE).fill(0xff), new Uint8Array(PAGE))).toBe(-1);
  });

  it.each([
    ['identical', 0, -1],
    ['identical', 1, -1],
    ['identical', 2, 0],
    ['identical', 4096, 0],
    ['byte0', 5, 3],
    ['byte0', 4, -1],
    ['byte4095', 4, 4],
    ['byte4095', 3, -1],
  ] as const)('%s page with dlen %i gives %i', (shape, dlen, expected) => {
    const cur = new Uint8Array(PAGE);
    if (shape === 'byte0') cur[0] = 9;
    if (shape === 'byte4095') cur[4095] = 1;
    expect(encodeXbzrle(zero, cur, new Uint8Array(dlen))).toBe(expected);
  });

  it('applies the 2-byte margin only when the page ends unchanged', () => {
    // A single changed run of n bytes at offset 100: L = 1 + ulen(n) + n.
    for (const endsChanged of [false, true]) {
      for (let n = 1; n < 300; n += 7) {
        const cur = new Uint8Array(PAGE);
        const at = endsChanged ? PAGE - n : 100;
        cur.fill(0xaa, at, at + n);
        const zrunLen = at < 128 ? 1 : 2;
        const L = zrunLen + (n < 128 ? 1 : 2) + n;
        const margin = endsChanged ? 0 : 2;
        expect(encodeXbzrle(zero, cur, new Uint8Array(L + margin))).toBe(L);
        expect(encodeXbzrle(zero, cur, new Uint8Array(L + margin - 1))).toBe(-1);
      }
    }
  });

  it('never writes past out.length, even when overflowing', () => {
    const rand = rng(7);
    for (let t = 0; t < 200; t++) {
      const prev = new Uint8Array(PAGE).map(() => (rand() * 256) | 0);
      const cur = prev.map((v) => (rand() < 0.3 ? v ^ 0x5a : v));
      const dlen = Math.floor(rand() * PAGE);
      const big = new Uint8Array(dlen + 16).fill(0xee);
      encodeXbzrle(prev, cur, big.subarray(0, dlen));
      for (let i = dlen; i < big.length; i++) expect(big[i]).toBe(0xee);
    }
  });

  it('gives 0 for an empty page, whatever dlen', () => {
    expect(encodeXbzrle(new Uint8Array(0), new Uint8Array(0), new Uint8Array(0))).toBe(0);
  });

  it('throws ERR_XBZRLE_UNENCODABLE where QEMU would abort (16 KiB page, every byte changed)', () => {
    const prev = new Uint8Array(16384);
    const cur = new Uint8Array(16384).fill(1);
    expect(() => encodeXbzrle(prev, cur, new Uint8Array(16384 + 3))).toThrowError(
      expect.objectContaining({ code: 'ERR_XBZRLE_UNENCODABLE' }),
    );
    // With no room for the first pair, QEMU's room check returns -1 before its assertion.
    expect(encodeXbzrle(prev, cur, new Uint8Array(2))).toBe(-1);
  });

  it('rejects pages of different lengths and non-Uint8Array arguments', () => {
    expect(() => encodeXbzrle(new Uint8Array(4), new Uint8Array(8), new Uint8Array(8))).toThrow(RangeError);
    expect(() => encodeXbzrle([] as unknown as Uint8Array, new Uint8Array(8), new Uint8Array(8))).toThrow(TypeError);
  });
});

describe('decodeXbzrle: decoder edge cases (spec §6.4)', () => {
  const cases: [string, number | null, number?][] = [
    ['', 0],
    ['00', null, 0],
    ['00 00', null, 1],
    ['00 01 05', 1],
    ['05 01 aa', 6],
    ['05 01 aa 00 01 bb', null, 3],
    ['05 00 aa', null, 1],
    ['80 00 01 aa', 1],
    ['85 00 01 aa', 6],
    ['05 81 00 aa', 6],
    ['ff 7f 01 aa', null, 0],
    ['ff 1f 01 aa', 4096],
    ['ff 1f 02 aa bb', null, 2],
    ['80 20 01 aa', null, 2],
    ['01 05 aa bb', null, 1],
    ['80 80 01 aa', null, 0],
    ['05 01 aa 03', null, 3],
  ];

  it.each(cases)('%s → %s', (input, expected, offset) => {
    const page = new Uint8Array(PAGE).fill(0x11);
    const before = page.slice();
    if (expected === null) {
      expectCorrupt(() => decodeXbzrle(hex(input), page), offset);
      expect(sameBytes(page, before)).toBe(true); // validated before writing, unlike QEMU
      expect(refDecode(hex(input), new Uint8Array(PAGE))).toBe(-1);
    } else {
      expect(decodeXbzrle(hex(input), page)).toBe(expected);
      expect(refDecode(hex(input), new Uint8Array(PAGE))).toBe(expected);
    }
  });

  it('writes the runs where the delta says', () => {
    const page = new Uint8Array(PAGE);
    decodeXbzrle(hex('05 01 aa'), page);
    expect(page[5]).toBe(0xaa);
    expect(page.reduce((a, b) => a + b, 0)).toBe(0xaa);
  });

  it('accepts views at any byteOffset for both arguments', () => {
    const delta = atOffset(hex('05 02 aa bb 01 01 cc'), 3);
    const page = atOffset(new Uint8Array(PAGE), 5);
    expect(decodeXbzrle(delta, page)).toBe(9);
    expect(Array.from(page.subarray(4, 10))).toEqual([0, 0xaa, 0xbb, 0, 0xcc, 0]);
  });
});

describe('codec properties (fast-check)', () => {
  /** An old page and a new page made by applying random runs of changes. */
  const pagePair = (size: number) =>
    fc
      .tuple(
        fc.uint8Array({ minLength: size, maxLength: size }),
        fc.array(fc.tuple(fc.nat(size - 1), fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 255 })), { maxLength: 40 }),
        fc.boolean(),
      )
      .map(([prev, edits, zeroBase]) => {
        const base = zeroBase ? new Uint8Array(size) : prev;
        const cur = base.slice();
        for (const [at, len, xor] of edits) for (let i = at; i < Math.min(size, at + len); i++) cur[i] = cur[i]! ^ xor;
        return [base, cur] as const;
      });

  const sizes = fc.constantFrom(8, 64, 1024, 4096, 8192, 16384);

  it('encode agrees byte for byte with the reference encoder (any dlen, any alignment)', () => {
    fc.assert(
      fc.property(
        sizes.chain((s) => fc.tuple(pagePair(s), fc.integer({ min: 0, max: s + 8 }), fc.nat(7), fc.nat(7), fc.nat(7))),
        ([[prev, cur], dlen, s1, s2, s3]) => {
          const out = atOffset(new Uint8Array(dlen), s3);
          let got: number | 'abort';
          try {
            got = encodeXbzrle(atOffset(prev, s1), atOffset(cur, s2), out);
          } catch (err) {
            expect((err as XbzrleError).code).toBe('ERR_XBZRLE_UNENCODABLE');
            got = 'abort';
          }
          const want = refEncode(prev, cur, dlen);
          if (Array.isArray(want)) {
            expect(got).toBe(want.length);
            expect(Array.from(out.subarray(0, want.length))).toEqual(want);
          } else {
            expect(got).toBe(want);
          }
        },
      ),
      { numRuns: 400, seed: 42 },
    );
  });

  it('an out overlapping prev or cur (encoding in place) gives the delta of the inputs as they were, in ordinary and allocPages memory', () => {
    const small = fc.constantFrom(16, 64, 100, 1024, 4096);
    fc.assert(
      fc.property(
        small.chain((s) =>
          fc.tuple(pagePair(s), fc.constantFrom('cur', 'prev'), fc.integer({ min: -s, max: s }), fc.integer({ min: 0, max: s + 8 }), fc.boolean()),
        ),
        ([[prev, cur], target, shift, dlen, kernel]) => {
          const size = cur.length;
          // One buffer: prev, a gap, cur, room either side for out.
          const total = 4 * size + 64;
          const buf = kernel ? allocPages(Math.ceil(total / 4096)) : new Uint8Array(total);
          const prevAt = size;
          const curAt = 2 * size + 32;
          buf.set(prev, prevAt);
          buf.set(cur, curAt);
          const outAt = (target === 'cur' ? curAt : prevAt) + shift;
          const out = buf.subarray(outAt, outAt + dlen);
          let got: number | 'abort';
          try {
            got = encodeXbzrle(buf.subarray(prevAt, prevAt + size), buf.subarray(curAt, curAt + size), out);
          } catch (err) {
            expect((err as XbzrleError).code).toBe('ERR_XBZRLE_UNENCODABLE');
            got = 'abort';
          }
          const want = refEncode(prev, cur, out.length);
          if (Array.isArray(want)) {
            expect(got).toBe(want.length);
            expect(Array.from(out.subarray(0, want.length))).toEqual(want);
          } else {
            expect(got).toBe(want);
          }
          if (kernel) freePages(buf);
        },
      ),
      { numRuns: 400, seed: 7 },
    );
  });

  it('decode(encode(prev, cur)) applied to prev gives cur, returning the end of the last run', () => {
    fc.assert(
      fc.property(sizes.chain((s) => pagePair(s)), ([prev, cur]) => {
        const out = new Uint8Array(cur.length);
        let n: number;
        try {
          n = encodeXbzrle(prev, cur, out);
        } catch {
          return; // 16 KiB, fully changed: no delta exists
        }
        if (n < 0) return;
        const page = prev.slice();
        const end = decodeXbzrle(out.subarray(0, n), page);
        expect(sameBytes(page, cur)).toBe(true);
        let last = 0;
        for (let i = 0; i < cur.length; i++) if (prev[i] !== cur[i]) last = i + 1;
        expect(end).toBe(last);
      }),
      { numRuns: 300, seed: 7 },
    );
  });

  it('decode accepts and rejects exactly what the reference decoder does, leaving the page untouched on rejection', () => {
    const anyDelta = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      // Mostly valid deltas with small corruptions.
      fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([b, i, v]) => {
        const c = b.slice();
        c[i % c.length] = v;
        return c;
      }),
      // Real deltas from the encoder, then corrupted: one byte changed, cut short, or a byte inserted.
      fc
        .tuple(fc.uint8Array({ minLength: 4096, maxLength: 4096 }), fc.nat(4095), fc.nat(60), fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'cut', 'insert', 'none'))
        .map(([cur, at, len, i, v, how]) => {
          const prev = cur.slice();
          prev.fill(0, at, Math.min(4096, at + len + 1));
          const out = new Uint8Array(4096);
          const n = encodeXbzrle(prev, cur, out);
          const d = out.slice(0, Math.max(0, n));
          if (d.length === 0 || how === 'none') return d;
          const k = i % d.length;
          if (how === 'set') d[k] = v;
          if (how === 'cut') return d.slice(0, k);
          if (how === 'insert') return Uint8Array.from([...d.subarray(0, k), v, ...d.subarray(k)]);
          return d;
        }),
    );
    fc.assert(
      fc.property(anyDelta, fc.constantFrom(16, 64, 4096), (delta, dlen) => {
        const page = new Uint8Array(dlen).fill(0x33);
        const refPage = page.slice();
        const want = refDecode(delta, refPage);
        if (want < 0) {
          expectCorrupt(() => decodeXbzrle(delta, page));
          expect(page.every((v) => v === 0x33)).toBe(true);
        } else {
          expect(decodeXbzrle(delta, page)).toBe(want);
          expect(sameBytes(page, refPage)).toBe(true);
        }
      }),
      { numRuns: 2000, seed: 3 },
    );
  });
});

describe('buffers at the edges', () => {
  it('works on pages at the very end of their ArrayBuffer', () => {
    const rand = rng(17);
    for (const shift of [0, 1, 2, 3]) {
      const prevBuf = new Uint8Array(PAGE + shift);
      const curBuf = new Uint8Array(PAGE + shift);
      const prev = prevBuf.subarray(shift);
      const cur = curBuf.subarray(shift);
      for (let i = 0; i < PAGE; i++) prev[i] = (rand() * 256) | 0;
      cur.set(prev);
      cur[PAGE - 1] = cur[PAGE - 1]! ^ 1;
      cur[7] = cur[7]! ^ 1;
      const out = new Uint8Array(PAGE);
      const want = refEncode(prev, cur, PAGE) as number[];
      expect(encodeXbzrle(prev, cur, out)).toBe(want.length);
      expect(Array.from(out.subarray(0, want.length))).toEqual(want);
      expect(isZeroPage(cur)).toBe(false);
    }
  });

  it('works inside a 4 GiB buffer (word indexes past 2^32 bytes)', () => {
    const big = new Uint8Array(2 ** 32); // lazily zeroed: costs a few pages
    const page = big.subarray(2 ** 32 - 2 * PAGE, 2 ** 32 - PAGE);
    page[100] = 1;
    expect(isZeroPage(page)).toBe(false);
    const out = new Uint8Array(PAGE);
    expect(encodeXbzrle(new Uint8Array(PAGE), page, out)).toBe(3);
    expect(toHex(out.subarray(0, 3))).toBe('640101');
    out.fill(0);
    expect(encodeXbzrle(big.subarray(2 ** 32 - PAGE), page, out)).toBe(3); // both pages in the big buffer
    expect(toHex(out.subarray(0, 3))).toBe('640101');
  });
});

describe('isZeroPage', () => {
  it('finds a single non-zero byte anywhere, in aligned and unaligned views', () => {
    for (const shift of [0, 1, 3]) {
      for (const at of [0, 1, 5, 100, 4093, 4095]) {
        const page = atOffset(new Uint8Array(PAGE), shift);
        expect(isZeroPage(page)).toBe(true);
        page[at] = 1;
        expect(isZeroPage(page)).toBe(false);
      }
    }
  });
});
