import type { RamBlock } from '../format/record-writer.js';
import type { FilePageStore } from '../store/file-page-store.js';
import { PageBits } from '../store/page-bits.js';
import type { PageLocation, PageStore } from '../store/page-store.js';
import { CliError } from './errors.js';

/**
 * A page store for commands that write one block to one file (`decode`,
 * `patch`): pages of the chosen block go to `file`; pages of other blocks are
 * parsed, checked and dropped (read as zero pages). The block is `wanted`
 * (`--block`), else the stream's only one: a block list of several without
 * `--block` is an error naming them.
 *
 * It passes on the file store's in-place capability, so records are applied
 * in the file store's cache (by worker threads too). With `requireSent`
 * (`decode`, whose output is a new file), a page the stream never sent reads
 * as zeros without touching the file, and a ZERO record for it leaves a hole.
 */
export class SingleBlockStore implements PageStore {
  /** The block written: `--block`, else the first one seen. */
  chosen: string | undefined;
  /** True once the chosen block was declared or had a page. */
  found = false;
  private readonly seen = new Set<string>();

  private readonly explicit: boolean;
  /** Pages of the chosen block the stream has sent (PAGE or ZERO), when `requireSent`. */
  private readonly sent: PageBits | null;
  /** Where pages of the other blocks are applied (and dropped). */
  private readonly dropped: PageLocation = { bytes: new Uint8Array(0), at: 0 };

  /**
   * @param requireSent refuse an XBZRLE record for a page the stream never sent
   *   (`decode`: such a stream is a delta against a base image, for `patch`).
   */
  constructor(
    private readonly file: FilePageStore,
    private readonly inputName: string,
    wanted: string | undefined,
    private readonly pageSize = 4096,
    requireSent = false,
  ) {
    this.chosen = wanted;
    this.explicit = wanted !== undefined;
    this.sent = requireSent ? new PageBits() : null;
  }

  get(block: string, offset: number, into: Uint8Array): void | Promise<void> {
    if (this.pick(block)) {
      if (this.sent !== null && !this.wasSent(offset)) throw this.unsent(offset);
      return this.file.get(block, offset, into);
    }
    into.fill(0);
  }

  put(block: string, offset: number, data: Uint8Array): void | Promise<void> {
    if (this.pick(block)) {
      if (this.sent !== null) this.markSent(offset, data.length);
      return this.file.put(block, offset, data);
    }
  }

  get parallelAfter(): number {
    return this.file.parallelAfter;
  }

  putBorrowed(block: string, offset: number, data: Uint8Array): boolean {
    if (!this.pick(block) || !this.file.putBorrowed(block, offset, data)) return false;
    if (this.sent !== null) this.markSent(offset, data.length);
    return true;
  }

  releaseBorrowed(): void {
    this.file.releaseBorrowed();
  }

  locate(block: string, offset: number, length: number, create: boolean): PageLocation | undefined | null {
    if (!this.pick(block)) {
      if (!create) return undefined; // reads as zeros
      if (this.dropped.bytes.length !== length) this.dropped.bytes = new Uint8Array(length);
      return this.dropped;
    }
    if (this.sent !== null && !this.wasSent(offset)) {
      if (!create) return undefined; // never sent: zeros in the new file
      this.markSent(offset, length);
    }
    return this.file.locate(block, offset, length, create);
  }

  prepare(block: string, offset: number, length: number, create: boolean): Promise<void> {
    return this.pick(block) ? this.file.prepare(block, offset, length, create) : Promise.resolve();
  }

  written(block: string, end: number): void {
    if (this.pick(block)) this.file.written(block, end);
  }

  fill(block: string, offset: number, length: number, byte: number): void | Promise<void> {
    if (!this.pick(block)) return;
    if (this.sent !== null && !this.wasSent(offset)) {
      this.markSent(offset, length);
      // A page never sent is zeros in the new file: a ZERO record leaves it a hole.
      if (byte === 0) return this.file.hole(block, offset, length);
    }
    return this.file.fill(block, offset, length, byte);
  }

  shareMemory(): void {
    this.file.shareMemory();
  }

  /** Refuses a delta for a page of the chosen block the stream never sent (see `requireSent`). */
  fresh(block: string, offset: number): void {
    if (this.sent !== null && this.pick(block) && !this.wasSent(offset)) throw this.unsent(offset);
  }

  private unsent(offset: number): CliError {
    return new CliError(
      `${this.inputName}: a delta against a base image (it updates the page at offset ${offset}, which it never sent): ` +
        `apply it with 'xbzrle patch BASE ${this.inputName === 'stdin' ? '-' : this.inputName} -o NEW'`,
    );
  }

  private markSent(offset: number, length: number): void {
    for (let page = offset / this.pageSize, end = (offset + length) / this.pageSize; page < end; page++) this.sent!.add(page);
  }

  private wasSent(offset: number): boolean {
    return this.sent!.has(offset / this.pageSize);
  }

  declare(blocks: readonly RamBlock[]): void | Promise<void> {
    if (this.chosen === undefined && blocks.length > 1) {
      throw new CliError(`${this.inputName}: the stream holds ${blocks.length} blocks (${blocks.map((b) => b.id).join(', ')}); choose one with --block`);
    }
    return this.file.declare(blocks.filter((b) => this.pick(b.id)));
  }

  finish(): Promise<void> {
    return this.file.finish();
  }

  /** Throws when the stream ended without the chosen block. */
  checkFound(): void {
    if (this.found) return;
    if (this.chosen === undefined) throw new CliError(`${this.inputName}: the stream holds no pages and no block list`);
    const others = this.seen.size === 0 ? '' : ` (it holds ${[...this.seen].join(', ')})`;
    throw new CliError(`${this.inputName}: the stream has no block ${JSON.stringify(this.chosen)}${others}`);
  }

  private pick(block: string): boolean {
    this.seen.add(block);
    this.chosen ??= block;
    if (block !== this.chosen) {
      // Without --block, a stream with no block list that turns out to hold a second block is
      // ambiguous: fail rather than silently drop its pages.
      if (!this.explicit) {
        throw new CliError(`${this.inputName}: the stream holds blocks ${JSON.stringify(this.chosen)} and ${JSON.stringify(block)}; choose one with --block`);
      }
      return false;
    }
    this.found = true;
    return true;
  }
}
