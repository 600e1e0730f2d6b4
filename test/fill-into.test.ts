/**
 * `fillInto`: the same bytes as `Uint8Array.fill` on plain and shared
 * memory (where it fills the aligned middle through wider views), views at
 * any offset, any range, any byte; nothing outside the range touched.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fillInto } from '../lib/codec/copy.js';

describe('fillInto', () => {
  it('equals Uint8Array.fill for views of shared and plain memory at any offset, range and byte', () => {
    const shared = new Uint8Array(new SharedArrayBuffer(1 << 14));
    const plain = new Uint8Array(1 << 14);
    fc.assert(
      fc.property(fc.boolean(), fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 9000 }), fc.integer({ min: 0, max: 9000 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 0xffffffff }), (isShared, viewAt, a, b, value, seed) => {
        const backing = isShared ? shared : plain;
        let x = seed | 1;
        for (let i = 0; i < backing.length; i++) backing[i] = (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24; // bytes that are not the fill value everywhere
        const view = backing.subarray(viewAt, viewAt + 9100);
        const [from, to] = a <= b ? [a, b] : [b, a];
        const want = Uint8Array.from(backing);
        want.subarray(viewAt, viewAt + 9100).fill(value, from, to);
        fillInto(view, value, from, to);
        expect(Buffer.compare(Buffer.from(backing.buffer as ArrayBuffer), Buffer.from(want.buffer))).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('fills the kernel memory of a WebAssembly.Memory (a shared one) the same way', () => {
    const WA = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number; maximum: number; shared: boolean }) => { buffer: SharedArrayBuffer } } }).WebAssembly;
    const mem = new WA.Memory({ initial: 1, maximum: 4, shared: true });
    const u8 = new Uint8Array(mem.buffer, 3, 4000);
    u8.fill(7);
    fillInto(u8, 0, 5, 3999);
    expect(u8[4]).toBe(7);
    expect(u8.subarray(5, 3999).every((v) => v === 0)).toBe(true);
    expect(u8[3999]).toBe(7);
    fillInto(u8, 0x9c, 1, 2000);
    expect(u8.subarray(1, 2000).every((v) => v === 0x9c)).toBe(true);
    expect([u8[0], u8[2000]]).toEqual([7, 0]);
  });
});
