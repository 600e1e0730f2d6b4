import type { RamBlock } from '../format/record-writer.js';
import type { FilePageStore } from '../store/file-page-store.js';
import type { PageStore } from '../store/page-store.js';
import { CliError } from './errors.js';

/**
 * A page store for commands that write one block to one file (`decode`,
 * `patch`): pages of the chosen block go to `file`; pages of other blocks are
 * parsed, checked and dropped (read as zero pages). The block is `wanted`
 * (`--block`), else the stream's only one: a block list of several without
 * `--block` is an error naming them.
 */
export class SingleBlockStore implements PageStore {
  /** The block written: `--block`, else the first one seen. */
  chosen: string | undefined;
  /** True once the chosen block was declared or had a page. */
  found = false;
  private readonly seen = new Set<string>();

  private readonly explicit: boolean;

  constructor(
    private readonly file: FilePageStore,
    private readonly inputName: string,
    wanted: string | undefined,
  ) {
    this.chosen = wanted;
    this.explicit = wanted !== undefined;
  }

  get(block: string, offset: number, into: Uint8Array): void | Promise<void> {
    if (this.pick(block)) return this.file.get(block, offset, into);
    into.fill(0);
  }

  put(block: string, offset: number, data: Uint8Array): void | Promise<void> {
    if (this.pick(block)) return this.file.put(block, offset, data);
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
