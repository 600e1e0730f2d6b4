import { XbzrleError } from '../errors.js';

const EMPTY = new Uint8Array(0);

/**
 * An input that can be read at any position (a regular file, bytes in
 * memory): its iterator yields chunks from `position`, which `seek` moves.
 */
export interface RandomAccessInput extends AsyncIterable<Uint8Array> {
  /** Total length in bytes. */
  readonly size: number;
  /** Moves where the iterator reads next. */
  seek(position: number): void;
  /** Reads up to `into.length` bytes at `position`; resolves to the count read (less only at the end). */
  readAt(into: Uint8Array, position: number): Promise<number>;
}

/**
 * Sequential reads over an async iterable of byte chunks, for formats whose
 * fields are read one at a time (the migration-file container). `need(n)`
 * waits until `n` bytes are buffered; the typed reads then take them.
 */
export class ByteSource {
  private readonly iterator: AsyncIterator<Uint8Array>;
  private buf: Uint8Array = EMPTY;
  private pos = 0;
  /** Stream offset of `buf[0]`. */
  private base = 0;
  private done = false;
  /** Bytes received from the input so far. */
  received = 0;

  /** The input when it can be read at any position, else null. */
  readonly random: RandomAccessInput | null;

  constructor(
    input: AsyncIterable<Uint8Array>,
    private readonly onChunk?: (received: number) => void,
    random?: RandomAccessInput,
  ) {
    this.random = random ?? null;
    this.iterator = input[Symbol.asyncIterator]();
  }

  /**
   * Moves the read position forward to `offset` (or anywhere, on a random
   * access input). A sequential input has the bytes in between read and
   * dropped; `false` when it ends before `offset`. `offset` behind the
   * current position on a sequential input throws `ERR_QEMU_UNSUPPORTED`
   * naming `what`.
   */
  async skipTo(offset: number, what: string): Promise<boolean> {
    const end = this.base + this.buf.length;
    if (offset >= this.base && offset <= end && (offset >= this.offset || this.random !== null)) {
      this.pos = offset - this.base;
      return true;
    }
    if (this.random !== null) {
      this.buf = EMPTY;
      this.pos = 0;
      this.base = offset;
      this.random.seek(offset);
      this.done = false;
      return offset <= this.random.size;
    }
    if (offset < this.offset) {
      throw new XbzrleError(
        'ERR_QEMU_UNSUPPORTED',
        `${what} at byte ${offset} lies before byte ${this.offset}, already read: this input cannot go back (give readQemuMigration the file path, or the bytes)`,
        { offset },
      );
    }
    // Drop the buffer and whole chunks before `offset`.
    this.base = end;
    this.buf = EMPTY;
    this.pos = 0;
    while (this.base < offset) {
      const chunk = await this.nextChunk();
      if (chunk === null) return false;
      if (this.base + chunk.length > offset) {
        this.buf = chunk;
        this.pos = offset - this.base;
        return true;
      }
      this.base += chunk.length;
    }
    return true;
  }

  /**
   * Fills `into` with the bytes at `position`: a positioned read on a random
   * access input (the sequential position does not move), else a skip to
   * `position` and a read past it. Resolves to the bytes read (fewer only
   * when the input ends first).
   */
  async readAt(position: number, into: Uint8Array, what: string): Promise<number> {
    if (this.random !== null) {
      const n = await this.random.readAt(into, position);
      this.received += n;
      this.onChunk?.(this.received);
      return n;
    }
    if (!(await this.skipTo(position, what))) return 0;
    let done = 0;
    for (;;) {
      const take = Math.min(this.buf.length - this.pos, into.length - done);
      into.set(this.buf.subarray(this.pos, this.pos + take), done);
      this.pos += take;
      done += take;
      if (done === into.length) return done;
      const chunk = await this.nextChunk();
      if (chunk === null) return done;
      this.base += this.buf.length;
      this.buf = chunk;
      this.pos = 0;
    }
  }

  /** Reads the input to its end, dropping it; resolves to the input's total length. */
  async drain(): Promise<number> {
    if (this.random !== null) return this.random.size;
    let end = this.base + this.buf.length;
    this.buf = EMPTY;
    this.pos = 0;
    for (let chunk = await this.nextChunk(); chunk !== null; chunk = await this.nextChunk()) end += chunk.length;
    this.base = end;
    return end;
  }

  /** Stream offset of the next unread byte. */
  get offset(): number {
    return this.base + this.pos;
  }

  /** Bytes buffered and unread. */
  get available(): number {
    return this.buf.length - this.pos;
  }

  /**
   * Reads more input until `n` bytes are buffered; false if the input ends
   * first (what arrived stays buffered). Chunks are joined once, when enough
   * have arrived: joining per chunk made a long field over a pipe of small
   * chunks quadratic.
   */
  async need(n: number): Promise<boolean> {
    let have = this.buf.length - this.pos;
    if (have >= n) return true;
    // A copy: the rest may be a view of the caller's chunk, which it may refill once asked for
    // the next one (fewer than `n` bytes: a small copy).
    const parts: Uint8Array[] = [this.buf.slice(this.pos)];
    let complete = true;
    while (have < n) {
      const chunk = await this.nextChunk();
      if (chunk === null) {
        complete = false;
        break;
      }
      parts.push(chunk);
      have += chunk.length;
    }
    if (parts.length > 1) {
      const merged = new Uint8Array(have);
      let at = 0;
      for (const part of parts) {
        merged.set(part, at);
        at += part.length;
      }
      this.base += this.pos;
      this.buf = merged;
      this.pos = 0;
    }
    return complete;
  }

  /** Like {@link ByteSource.need}, but throws `code` when the input ends first. */
  async require(n: number, what: string): Promise<void> {
    if (!(await this.need(n))) {
      throw new XbzrleError('ERR_QEMU_TRUNCATED', `migration stream ends at byte ${this.offset + this.available} inside ${what} at byte ${this.offset}`, {
        offset: this.offset,
      });
    }
  }

  u8(): number {
    return this.buf[this.pos++]!;
  }

  peek(): number {
    return this.buf[this.pos]!;
  }

  u16(): number {
    const v = (this.buf[this.pos]! << 8) | this.buf[this.pos + 1]!;
    this.pos += 2;
    return v;
  }

  u32(): number {
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
  }

  bytes(n: number): Uint8Array {
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  skip(n: number): void {
    this.pos += n;
  }

  /** Hands out the buffered, unread bytes (the caller consumes them elsewhere). */
  takeBuffered(): Uint8Array {
    const rest = this.buf.subarray(this.pos);
    this.base += this.buf.length;
    this.buf = EMPTY;
    this.pos = 0;
    return rest;
  }

  /** Puts back bytes a caller did not consume; `offset` is the stream offset of their first byte. */
  putBack(bytes: Uint8Array, offset: number): void {
    this.buf = bytes;
    this.pos = 0;
    this.base = offset;
  }

  /** The next input chunk, unbuffered, or null at the end of input. */
  async nextChunk(): Promise<Uint8Array | null> {
    if (this.done) return null;
    for (;;) {
      const r = await this.iterator.next();
      if (r.done === true) {
        this.done = true;
        return null;
      }
      const chunk = r.value;
      if (!(chunk instanceof Uint8Array)) {
        throw new TypeError(`migration input must yield Uint8Array chunks, got ${typeof chunk}`);
      }
      this.received += chunk.length;
      this.onChunk?.(this.received);
      if (chunk.length > 0) return chunk;
    }
  }

  /** Stops reading the input (closes a file stream early). */
  async close(): Promise<void> {
    this.done = true;
    await this.iterator.return?.();
  }
}
