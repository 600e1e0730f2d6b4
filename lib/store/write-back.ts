/** A file that can be asked to write its data back (a Node `FileHandle`). */
export interface SyncableFile {
  datasync(): Promise<void>;
}

/**
 * Asks the kernel to write a file's data back in the background every
 * `every` bytes written (64 MiB by default), one request at a time, so the
 * final fsync has little left and the write-back overlaps the work (otherwise
 * the kernel holds the whole output dirty until then). Shared by
 * `FilePageStore` and `patch`'s writer.
 */
export class WriteBack {
  private unsynced = 0;
  private pending: Promise<void> | null = null;
  private failure: { error: unknown } | null = null;

  constructor(private readonly every = 64 << 20) {}

  /** Counts `bytes` just written to `file`; starts a write-back when one is due and none is under way. */
  wrote(file: SyncableFile, bytes: number): void {
    this.unsynced += bytes;
    if (this.unsynced < this.every || this.pending !== null) return;
    this.unsynced = 0;
    const pending: Promise<void> = file.datasync().then(
      () => {
        if (this.pending === pending) this.pending = null;
      },
      (error: unknown) => {
        this.failure ??= { error };
        if (this.pending === pending) this.pending = null;
      },
    );
    this.pending = pending;
  }

  /** Waits for the write-back under way; throws when one failed. */
  async settled(): Promise<void> {
    await this.pending;
    if (this.failure !== null) throw this.failure.error;
  }

  /** Waits for the write-back under way, whatever its outcome (before closing the file). */
  async quiet(): Promise<void> {
    await this.pending;
  }
}
