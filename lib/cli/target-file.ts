import { open, readFile } from 'node:fs/promises';
import { XbzrleError } from '../errors.js';
import { checkTarget, type RamRecord, type TargetBlock } from '../format/record-parser.js';
import type { RamBlock } from '../format/record-writer.js';
import { QEMU_VM_FILE_MAGIC, readQemuMigration } from '../qemu/migration-file.js';
import { CliError } from './errors.js';

/** Largest JSON target file read (a block table is a few KiB). */
const MAX_JSON = 16 << 20;

/**
 * QEMU's resizeable fw_cfg blobs of x86 machines and their maximum sizes
 * (ACPI tables, the table loader, the RSDP), for a target taken from a
 * migration file: its MEM_SIZE list gives lengths only.
 */
const KNOWN_RESIZEABLE: Record<string, number> = {
  '/rom@etc/acpi/tables': 0x200000,
  '/rom@etc/table-loader': 0x10000,
  '/rom@etc/acpi/rsdp': 0x1000,
};

/** Stops reading a migration file once its block list is known. */
class Found extends Error {
  constructor(readonly blocks: RamBlock[]) {
    super('found');
  }
}

/**
 * The target block table of `--target FILE`: either a JSON array of
 * `{ id, length, maxLength?, resizeable? }` objects, or a QEMU migration file
 * (recognised by its "QEVM" magic) whose first MEM_SIZE list is reused — its
 * blocks become the target at those lengths, fixed-size except QEMU's known
 * resizeable fw_cfg blobs (`/rom@etc/acpi/tables` up to 2 MiB,
 * `/rom@etc/table-loader` up to 64 KiB, `/rom@etc/acpi/rsdp` up to 4 KiB), and
 * any other `/rom@` blob, which may shrink but not grow. Only the file's start
 * is read (through the first MEM_SIZE list).
 * @throws CliError naming the file when it is neither, or its table is invalid
 */
export async function loadTargetFile(path: string): Promise<TargetBlock[]> {
  const head = new Uint8Array(4);
  const handle = await open(path, 'r').catch((err: unknown) => {
    throw new CliError(`${path}: cannot read the target file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  });
  try {
    await handle.read(head, 0, 4, 0);
  } finally {
    await handle.close();
  }
  const magic = ((head[0]! << 24) | (head[1]! << 16) | (head[2]! << 8) | head[3]!) >>> 0;
  if (magic === QEMU_VM_FILE_MAGIC) return fromMigrationFile(path);
  const text = await readFile(path, 'utf8');
  if (text.length > MAX_JSON) throw new CliError(`${path}: a target file of ${text.length} bytes is not a block table (JSON) nor a QEMU migration file`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CliError(`${path}: not a QEMU migration file, and not JSON (${(err as Error).message})`);
  }
  try {
    checkTarget(value, '--target');
  } catch (err) {
    throw new CliError(`${path}: ${(err as Error).message.replace(/^The "--target" option /, 'the target table ')}`);
  }
  return (value as TargetBlock[]).map(({ id, length, maxLength, resizeable }) => ({
    id,
    length,
    ...(maxLength === undefined ? {} : { maxLength }),
    ...(resizeable === undefined ? {} : { resizeable }),
  }));
}

async function fromMigrationFile(path: string): Promise<TargetBlock[]> {
  let blocks: RamBlock[] | null = null;
  try {
    const info = await readQemuMigration(path, {
      store: null,
      onRecord: (rec: RamRecord) => {
        if (rec.kind === 'mem_size') throw new Found(rec.blocks.map((b) => ({ ...b })));
      },
    });
    if (info.blocks.length > 0) blocks = info.blocks;
  } catch (err) {
    if (err instanceof Found) blocks = err.blocks;
    else if (err instanceof XbzrleError) throw new CliError(`${path}: cannot take the target's blocks from this migration file: ${err.message}`);
    else throw err;
  }
  if (blocks === null || blocks.length === 0) throw new CliError(`${path}: this migration file has no MEM_SIZE list to take the target's blocks from`);
  return blocks.map(({ id, length }) => {
    const max = KNOWN_RESIZEABLE[id];
    if (max !== undefined) return { id, length, maxLength: Math.max(max, length), resizeable: true };
    if (id.startsWith('/rom@')) return { id, length, resizeable: true };
    return { id, length };
  });
}
