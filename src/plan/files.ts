import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { DumpSource } from './trace.js';

/**
 * Snapshots in files (raw images of one RAMBlock, same size), read by
 * offset when needed: the trace holds only dirty sets, never whole dumps.
 */
export class FileDumpSource implements DumpSource {
  readonly dumps: number;
  readonly pages: number;
  private readonly fds: number[] = [];

  constructor(
    readonly paths: string[],
    readonly pageSize = 4096,
  ) {
    if (paths.length < 2) throw new RangeError('a dirty-page trace needs at least two dumps');
    try {
      for (const p of paths) this.fds.push(openSync(p, 'r'));
      const sizes = this.fds.map((fd) => fstatSync(fd).size);
      for (const [i, size] of sizes.entries()) {
        if (size === 0 || size % pageSize !== 0) throw new RangeError(`${paths[i]}: ${size} bytes is not a whole number of ${pageSize}-byte pages`);
        if (size !== sizes[0]) throw new RangeError(`${paths[i]}: ${size} bytes, but ${paths[0]} has ${sizes[0]}: the dumps of a series share one size`);
      }
      this.pages = sizes[0]! / pageSize;
    } catch (e) {
      this.close();
      throw e;
    }
    this.dumps = paths.length;
  }

  read(dump: number, firstPage: number, count: number, out: Uint8Array): void {
    const len = count * this.pageSize;
    let got = 0;
    while (got < len) {
      const n = readSync(this.fds[dump]!, out, got, len - got, firstPage * this.pageSize + got);
      if (n === 0) throw new RangeError(`${this.paths[dump]}: ended before page ${firstPage + count}`);
      got += n;
    }
  }

  close(): void {
    for (const fd of this.fds.splice(0)) closeSync(fd);
  }
}
