import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { copyInto, isShared } from '../lib/codec/copy.js';

describe('isShared', () => {
  it("tells shared memory from plain, of this realm and of another one (a WebAssembly memory's buffer included)", () => {
    const other = (expr: string): Uint8Array => runInNewContext(`new Uint8Array(${expr})`) as Uint8Array;
    expect(isShared(new Uint8Array(8))).toBe(false);
    expect(isShared(new Uint8Array(new SharedArrayBuffer(8)))).toBe(true);
    expect(isShared(other('new ArrayBuffer(8)'))).toBe(false);
    expect(isShared(other('new SharedArrayBuffer(8)'))).toBe(true);
    const WA = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number; maximum: number; shared: boolean }) => { buffer: ArrayBufferLike } } }).WebAssembly;
    expect(isShared(new Uint8Array(new WA.Memory({ initial: 1, maximum: 1, shared: true }).buffer))).toBe(true);
    expect(isShared(Buffer.alloc(8))).toBe(false);
  });
});

describe('copyInto', () => {
  it('copies as TypedArray#set does, between shared and plain memory either way, at every alignment of source and destination', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.boolean(), fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 5000 }), fc.nat(), (shared, sharedSrc, srcOff, dstOff, length, seed) => {
        const srcBuf = new Uint8Array(sharedSrc ? new SharedArrayBuffer(length + 16) : new ArrayBuffer(length + 16));
        for (let i = 0; i < srcBuf.length; i++) srcBuf[i] = (i * 31 + seed) & 0xff;
        const src = srcBuf.subarray(srcOff, srcOff + length);
        const dst = new Uint8Array(shared ? new SharedArrayBuffer(length + 64) : new ArrayBuffer(length + 64)).subarray(8);
        const want = new Uint8Array(dst.length).fill(0xaa);
        dst.fill(0xaa);
        copyInto(dst, dstOff, src);
        want.set(src, dstOff);
        expect(isShared(dst)).toBe(shared);
        expect(Buffer.compare(Buffer.from(dst), Buffer.from(want))).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('throws as set does when the source does not fit', () => {
    const dst = new Uint8Array(new SharedArrayBuffer(4096));
    expect(() => copyInto(dst, 1, new Uint8Array(4096).subarray(0))).toThrow(RangeError);
  });
});
