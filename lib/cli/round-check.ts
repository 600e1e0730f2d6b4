import { allocPages, freePages } from '../codec/pages.js';
import { getScanner, scanOutBytes, type PageScanner } from '../delta/scan.js';

/**
 * What makes `xbzrle encode IMAGE...` safe to read each image twice (for its
 * round, then beside the next image, whose round is sent against it): the
 * XXH64 of every page as it was sent, checked against the second read. A
 * page read differently the second time (a file written meanwhile, also
 * through a shared mapping, which changes neither mtime nor ctime) is
 * reported, and the encoder then drops its cache entry: the page goes whole,
 * so the receiver gets what was read either way. 8 bytes per page of the
 * image, and one scan (compare and hash, in place in the kernel's memory)
 * per run of pages.
 */
export class RoundCheck {
  /** The hash of each page as last sent (low, high words), once a round was seen. */
  private readonly sent: Uint32Array;
  private readonly scratch: Uint8Array;
  private readonly flagged: Uint8Array;
  private readonly zeroHash: bigint;
  private disposed = false;

  private constructor(
    private readonly scanner: PageScanner,
    pages: number,
    private readonly pageSize: number,
    private readonly runPages: number,
  ) {
    this.sent = new Uint32Array(pages * 2);
    this.scratch = allocPages(Math.ceil(Math.max(scanOutBytes(runPages), pageSize) / 4096));
    this.flagged = new Uint8Array(runPages);
    // The hash all-zero pages get (the scan does not hash them): a zero page's XXH64,
    // of the scratch while it is still zero (or 0 where the scan cannot read it).
    const at = scanner.engine.addressOf(this.scratch);
    this.zeroHash = at >= 0 ? scanner.xxh64(at, pageSize) : 0n;
  }

  /**
   * A check for images of `pages` pages read in runs of at most `runPages`,
   * or null where the page scan is missing (no WebAssembly SIMD or shared
   * memory): the images are then cached, not read twice.
   */
  static make(pages: number, pageSize: number, runPages: number): RoundCheck | null {
    const scanner = getScanner();
    if (scanner === null || pageSize % 64 !== 0) return null;
    const check = new RoundCheck(scanner, pages, pageSize, runPages);
    if (check.scanner.engine.addressOf(check.scratch) < 0) {
      check.dispose();
      return null;
    }
    return check;
  }

  /**
   * Checks a run of `current` pages from page `first` of the image: with
   * `previous` (the same pages of the image before, read again), the pages
   * whose second read differs from what was sent are flagged (1 in the
   * returned array, one byte per page; null when none is). Then records
   * `current`'s hashes as sent, unless `last` (the last round: no round is
   * checked against it, so only `previous` is hashed, and a single round
   * not at all). Both must be in the kernel's memory (as the image reader
   * gives them); otherwise every page is flagged.
   */
  pass(current: Uint8Array, previous: Uint8Array | null, first: number, last = false): Uint8Array | null {
    if (this.disposed) throw new Error('RoundCheck: used after dispose()');
    const ps = this.pageSize;
    const count = current.length / ps;
    if (count > this.runPages || !Number.isInteger(count)) throw new Error(`RoundCheck: a run of ${current.length} bytes`);
    const engine = this.scanner.engine;
    const cur = engine.addressOf(current);
    const prev = previous === null ? cur : engine.addressOf(previous);
    const out = engine.addressOf(this.scratch);
    const flagged = this.flagged.subarray(0, count);
    if (cur < 0 || prev < 0) {
      // Not where the scan reads: nothing is known (not expected from the image reader).
      flagged.fill(1);
      return flagged;
    }
    // The current pages' hashes at out + 8 * count; with previous, the previous pages' at out.
    if (last) {
      if (previous === null) return null;
      this.scanner.hashPages(prev, count, ps, out, out + count * 16, this.zeroHash);
    } else if (previous === null) this.scanner.hashPages(cur, count, ps, out + count * 8, out + count * 16, this.zeroHash);
    else this.scanner.scan(prev, cur, count, ps, out, out + count * 8, out + count * 16, this.zeroHash);
    const words = new Uint32Array(engine.bytes().buffer, out, count * 4);
    const sent = this.sent;
    let any = false;
    for (let p = 0, g = first * 2; p < count; p++, g += 2) {
      if (previous !== null) {
        const bad = sent[g] !== words[2 * p] || sent[g + 1] !== words[2 * p + 1];
        flagged[p] = bad ? 1 : 0;
        any ||= bad;
      }
      if (!last) {
        sent[g] = words[2 * count + 2 * p]!;
        sent[g + 1] = words[2 * count + 2 * p + 1]!;
      }
    }
    return any ? flagged : null;
  }

  /** Gives the scan's area back (once). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    freePages(this.scratch);
  }
}
