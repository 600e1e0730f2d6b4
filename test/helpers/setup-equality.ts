/**
 * Setup file of every test project: typed arrays of integers compared by
 * their bytes. vitest's `toEqual` walks a typed array element by element as
 * it does any object (a 1 MiB `Uint8Array` took 4.4 s on the 2-core VM), and
 * many tests compare whole images. Same verdicts as vitest for arrays of one
 * class (a `Buffer` and a `Uint8Array` are still told apart, by vitest, as
 * are arrays of other classes); properties added to an array by hand or by a
 * subclass's fields are not compared. Float arrays, and views this cannot read
 * (a detached buffer, a resizable one shrunk under the view), are left to
 * vitest (NaN and -0 are not byte questions).
 */
import { Buffer } from 'node:buffer';
import { expect } from 'vitest';

const INTEGER_ARRAYS = [Uint8Array, Uint8ClampedArray, Int8Array, Uint16Array, Int16Array, Uint32Array, Int32Array, BigUint64Array, BigInt64Array];

function integerArray(v: unknown): v is ArrayBufferView {
  return ArrayBuffer.isView(v) && INTEGER_ARRAYS.some((C) => v instanceof C);
}

expect.addEqualityTesters([
  function integerArraysByBytes(a: unknown, b: unknown): boolean | undefined {
    if (!integerArray(a) || !integerArray(b) || Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return undefined;
    try {
      if (a.byteLength !== b.byteLength) return false;
      return Buffer.compare(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), new Uint8Array(b.buffer, b.byteOffset, b.byteLength)) === 0;
    } catch {
      return undefined;
    }
  },
]);
