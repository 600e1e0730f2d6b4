/**
 * A set of page numbers as bits: 8 KiB per 64 Ki pages (256 MiB of 4 KiB
 * pages), allocated as pages of that range come, so a sparse set over a
 * large image costs little.
 */
export class PageBits {
  private readonly chunks = new Map<number, Uint8Array>();

  add(page: number): void {
    const key = Math.floor(page / 65536);
    let bits = this.chunks.get(key);
    if (bits === undefined) this.chunks.set(key, (bits = new Uint8Array(8192)));
    const i = page % 65536;
    bits[i >>> 3]! |= 1 << (i & 7);
  }

  has(page: number): boolean {
    const bits = this.chunks.get(Math.floor(page / 65536));
    const i = page % 65536;
    return bits !== undefined && (bits[i >>> 3]! & (1 << (i & 7))) !== 0;
  }
}
