import { describe, expect, it } from 'vitest';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import { StreamDecoder } from '../src/stream/decoder.js';
import { transcodeBytes } from '../src/stream/transcode.js';
import { sameBytes } from './support/build.js';
import { requireBuiltCli, runCli } from './support/cli.js';

requireBuiltCli();

/** A copy in a buffer of its own (a Node Buffer's slice() is a view of the same memory). */
const copy = (b: Uint8Array, start: number, end: number): Uint8Array => new Uint8Array(b.subarray(start, end));

describe('StreamDecoder.holds: whether a reader may refill a buffer it pushed', () => {
  it('true while bytes of the buffer are still to be parsed, false once they are consumed', () => {
    const stream = loadFixture('plain').stream;
    const d = new StreamDecoder(() => {});
    const a = copy(stream, 0, 100_000); // ends inside a page record
    const b = copy(stream, 100_000, 200_000);
    d.push(a);
    expect(d.holds(a.buffer)).toBe(true); // the partial record's bytes
    expect(d.holds(b.buffer)).toBe(false);
    d.push(b); // the record spanning the two is bridged; parsing goes on in b
    expect(d.holds(a.buffer)).toBe(false);
    expect(d.holds(b.buffer)).toBe(true);
  });

  it('a chunk queued behind an incomplete unit is held', () => {
    const stream = loadFixture('plain').stream;
    const d = new StreamDecoder(() => {});
    d.push(copy(stream, 0, 100_000));
    const pending: Uint8Array[] = [];
    // a few bytes at a time: each waits in the queue until the record it completes is whole
    for (let at = 100_000; at < 100_020; at += 4) {
      const c = copy(stream, at, at + 4);
      pending.push(c);
      d.push(c);
    }
    expect(pending.some((c) => d.holds(c.buffer))).toBe(true);
  });
});

describe('transcode from stdin refills its read buffers (two slabs in turn)', () => {
  // 21 MB (plain, block: several turns of the two 4 MiB slabs), XBZRLE pages read back from the RAM store,
  // compressed pages inflated: output byte for byte what the library writes.
  it.each(['plain', 'block', 'xbzrle-hit', 'compress-xbzrle'])('%s', (name) => {
    const fx = loadFixture(name as Parameters<typeof loadFixture>[0]);
    const r = runCli(['transcode', '-', '-'], fx.stream);
    expect(r.code).toBe(0);
    expect(sameBytes(r.stdoutBytes, transcodeBytes(fx.stream))).toBe(true);
  });
});
