import { wordsOf } from './words.js';

/** True when `len` bytes at `a[aOff]` equal those at `b[bOff]`; compares words where both are aligned alike. */
export function equalRange(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, len: number): boolean {
  const aa = a.byteOffset + aOff;
  const ba = b.byteOffset + bOff;
  let i = 0;
  if (len >= 16 && ((aa ^ ba) & 3) === 0) {
    while (((ba + i) & 3) !== 0) {
      if (a[aOff + i] !== b[bOff + i]) return false;
      i++;
    }
    const aw = wordsOf(a);
    const bw = wordsOf(b);
    let wb = (ba + i) / 4;
    let wa = (aa + i) / 4;
    const wEnd = wb + Math.floor((len - i) / 4);
    while (wb < wEnd) {
      if (aw[wa] !== bw[wb]) return false;
      wa++;
      wb++;
    }
    i = wb * 4 - ba;
  }
  for (; i < len; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}
