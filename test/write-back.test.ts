import { describe, expect, it } from 'vitest';
import { WriteBack } from '../lib/store/write-back.js';

/** A file whose datasync calls are counted and settled by hand. */
function fakeFile() {
  const calls: { resolve: () => void; reject: (err: Error) => void }[] = [];
  return {
    calls,
    datasync: () => new Promise<void>((resolve, reject) => calls.push({ resolve, reject })),
  };
}

describe('WriteBack', () => {
  it('asks for a write-back every N bytes, one at a time', async () => {
    const file = fakeFile();
    const wb = new WriteBack(100);
    wb.wrote(file, 60);
    expect(file.calls).toHaveLength(0);
    wb.wrote(file, 60);
    expect(file.calls).toHaveLength(1);
    wb.wrote(file, 500); // one under way: none more
    expect(file.calls).toHaveLength(1);
    file.calls[0]!.resolve();
    await wb.settled();
    wb.wrote(file, 100);
    expect(file.calls).toHaveLength(2);
    file.calls[1]!.resolve();
    await wb.settled();
  });

  it('reports a failed write-back from settled(), not from quiet()', async () => {
    const file = fakeFile();
    const wb = new WriteBack(10);
    wb.wrote(file, 10);
    file.calls[0]!.reject(new Error('EIO'));
    await wb.quiet();
    await expect(wb.settled()).rejects.toThrow('EIO');
  });
});
