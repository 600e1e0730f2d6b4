// The CLI's --target FILE loader (issue 16 part 4/5): a JSON block table or a QEMU migration file.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTargetFile } from '../lib/cli/target-file.js';
import { readQemuMigration } from '../lib/index.js';
import { loadFixture } from './helpers/qemu-file.js';
import { gunzipFile } from './helpers/fixtures.js';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'xbzrle-tf-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadTargetFile', () => {
  it('a JSON array of blocks', async () => {
    const p = join(dir, 't.json');
    await writeFile(p, JSON.stringify([{ id: 'pc.ram', length: 4096 }, { id: 'rom', length: 4096, maxLength: 8192, resizeable: true }]));
    expect(await loadTargetFile(p)).toEqual([{ id: 'pc.ram', length: 4096 }, { id: 'rom', length: 4096, maxLength: 8192, resizeable: true }]);
  });

  it('a QEMU migration file: its MEM_SIZE list, fixed except the fw_cfg blobs; the file it came from loads against it', async () => {
    const { mig } = loadFixture('sparse-c32m');
    const p = join(dir, 'vm.mig');
    await writeFile(p, mig);
    const target = await loadTargetFile(p);
    expect(target[0]).toEqual({ id: 'pc.ram', length: 0x2000000 });
    expect(target.find((b) => b.id === '/rom@etc/acpi/tables')).toEqual({ id: '/rom@etc/acpi/tables', length: 0x20000, maxLength: 0x200000, resizeable: true });
    expect(target.find((b) => b.id === 'pc.bios')).toEqual({ id: 'pc.bios', length: 0x40000 });
    expect((await readQemuMigration(p, { store: null, target })).ramComplete).toBe(true);
  });

  it('a mapped-ram file gives its list too', async () => {
    const p = join(dir, 'mr.mig');
    await writeFile(p, gunzipFile(fileURLToPath(new URL('./fixtures/qemu-10.0/mappedram-sparse.mig.gz', import.meta.url))));
    const target = await loadTargetFile(p);
    expect(target.map((b) => b.id)).toContain('0000:00:02.0/vga.vram');
  });

  it('anything else: a one-line error naming the file', async () => {
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '{"id":1}');
    await expect(loadTargetFile(bad)).rejects.toThrow(/bad\.json: the target table must be an array/);
    await writeFile(bad, 'not json');
    await expect(loadTargetFile(bad)).rejects.toThrow(/bad\.json: not a QEMU migration file, and not JSON/);
    await expect(loadTargetFile(join(dir, 'missing'))).rejects.toThrow(/missing: cannot read the target file \(ENOENT\)/);
  });
});
