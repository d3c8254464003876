import { describe, expect, it } from 'vitest';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import { decodeAll } from '../src/stream/decoder.js';
import { RamImage } from '../src/stream/ram-image.js';
import { xbzrleEncode } from '../src/xbzrle/encode.js';
import { sameBytes } from './support/build.js';

// For every XBZRLE record real QEMU wrote: old = the page before the record applies, new = after;
// our encoder must produce QEMU's bytes exactly.
describe.each(['xbzrle-hit', 'xbzrle-miss', 'compress-xbzrle'])('XBZRLE records of the %s fixture', (name) => {
  it('re-encode old → new byte for byte', () => {
    const fx = loadFixture(name);
    const ram = new RamImage();
    const old = new Uint8Array(4096);
    const out = new Uint8Array(4096);
    let records = 0;
    let identical = 0;
    decodeAll(fx.stream, (ev) => {
      if (ev.type === 'ram-blocks') ram.setBlocks(ev.blocks);
      else if (ev.type === 'page') {
        if (ev.kind === 'xbzrle') old.set(ram.page(ev.block.idstr, ev.offset, 4096));
        ram.apply(ev);
        if (ev.kind === 'xbzrle') {
          records++;
          const len = xbzrleEncode(old, ram.page(ev.block.idstr, ev.offset, 4096), out);
          if (len === ev.data.length && sameBytes(out.subarray(0, len), ev.data)) identical++;
        }
      }
    });
    expect(records).toBeGreaterThan(0);
    expect(identical).toBe(records);
  });
});
