import type { RamRecord, RamRecordParser } from '../format/record-parser.js';
import type { XbzrleStats } from '../stats.js';
import { isPromise, type RamLoader } from './ram-loader.js';

/** Sees each record before it is applied (statistics, reports). */
export type RecordObserver = (record: RamRecord) => void;

/**
 * The one parse-and-apply loop: records out of a {@link RamRecordParser},
 * each applied by a {@link RamLoader}, the stream counters kept in step with
 * the parser. The decoder core, the migration-file reader, `stat` and the
 * report all run their records through it.
 */
export class RamApplier {
  constructor(
    readonly parser: RamRecordParser,
    readonly loader: RamLoader,
    private readonly observe?: RecordObserver,
  ) {}

  /** The loader's counters. */
  get stats(): XbzrleStats {
    return this.loader.stats;
  }

  /**
   * Takes the next input chunk (the previous one must be used up). A loader
   * that borrows may take its PAGE records as they are (see
   * `RamLoaderOptions.borrow`): call `loader.release()` before the chunk changes.
   */
  push(chunk: Uint8Array): void {
    this.parser.push(chunk);
    this.loader.input = chunk;
  }

  /**
   * Parses and applies the next record and returns it; null when the input
   * is used up (push more, or end). With an asynchronous store, a promise of
   * the record: wait for it before the next call (the record's payload is a
   * view of the input, valid until then).
   * @throws XbzrleError on malformed input or a delta that does not apply
   */
  next(): RamRecord | null | Promise<RamRecord> {
    const parser = this.parser;
    let rec;
    try {
      rec = parser.next();
    } catch (err) {
      this.loader.flush(); // records before the bad one are applied first (their errors come first)
      throw err;
    }
    const stats = this.loader.stats;
    stats.multifdFlushes = parser.multifdFlushes;
    if (rec === null) return null;
    stats.transferred = parser.position;
    this.observe?.(rec);
    const pending = this.loader.apply(rec);
    // An EOS that ends the input: the sender finished a round and nothing more has come. What
    // is queued for a worker pool is made now, so the store holds the round (as with one thread)
    // while the input is awaited.
    if (rec.kind === 'eos' && parser.buffered === 0) this.loader.flush();
    return pending === undefined ? rec : settleWith(pending, rec);
  }

  /**
   * The end of input: makes what is still queued for a worker pool, then
   * checks the stream ended after an EOS (`ERR_RAM_TRUNCATED`).
   */
  end(): void {
    this.loader.flush();
    this.parser.end();
  }

  /**
   * Applies every record of `chunks`, then checks the stream ended after an
   * EOS (`ERR_RAM_TRUNCATED`).
   */
  async applyAll(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<void> {
    const loader = this.loader;
    for await (const chunk of chunks) {
      this.push(chunk);
      try {
        for (let r = this.next(); r !== null; r = this.next()) if (isPromise(r)) await r;
      } catch (err) {
        loader.releaseAfterError(); // the pages before the error, while the chunk is still there
        throw err;
      }
      loader.release(); // the chunk is used up: the iterator may reuse it
    }
    this.end();
  }
}

/**
 * `rec` once `pending` settles. Apart from {@link RamApplier.next} so that the
 * closure's context is not made on every record (V8 makes it when the
 * function that holds the captured variable is entered).
 */
function settleWith(pending: Promise<void>, rec: RamRecord): Promise<RamRecord> {
  return pending.then(() => rec);
}
