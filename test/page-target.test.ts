import { describe, expect, it } from 'vitest';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import { MigstreamError } from '../src/codec/errors.js';
import { StreamDecoder, type DecoderOptions } from '../src/stream/decoder.js';
import type { PageEvent, StreamEvent } from '../src/stream/events.js';
import { RamImage } from '../src/stream/ram-image.js';
import { concatChunks, transcodeBytes, Transcoder } from '../src/stream/transcode.js';
import { sameBytes } from './support/build.js';

// DecoderOptions.pageTarget: LZ4 pages decoded straight into the consumer's RAM image (the transcoder's fast path).
const fx = loadFixture('plain');
const lz4 = transcodeBytes(fx.stream, { compress: { codec: 'lz4' } });

/** Decodes into a RamImage, with or without the image as the pageTarget; the LZ4 page events seen. */
function decodeInto(stream: Uint8Array, target: boolean, image = new RamImage()) {
  const lz4Pages: PageEvent[] = [];
  const options: DecoderOptions = target ? { pageTarget: (b, offset, size) => image.pageTarget(b.idstr, offset, size) } : {};
  let error: MigstreamError | undefined;
  try {
    const d = new StreamDecoder((ev: StreamEvent) => {
      if (ev.type === 'ram-blocks') image.setBlocks(ev.blocks);
      else if (ev.type === 'page') {
        if (ev.kind === 'lz4') lz4Pages.push(ev);
        image.apply(ev);
      }
    }, options);
    d.push(stream);
    d.end();
  } catch (e) {
    if (!(e instanceof MigstreamError)) throw e;
    error = e;
  }
  return { image, lz4Pages, error };
}

/** Offset of the first LZ4 page record's payload (its be32 length is the 4 bytes before). */
function firstLz4Payload(stream: Uint8Array): PageEvent {
  const { lz4Pages } = decodeInto(stream, false);
  expect(lz4Pages.length).toBeGreaterThan(100);
  return lz4Pages.find((p) => p.wireBytes === 8 + 4 + p.compressedBytes!)!; // a CONTINUE record: 8-byte header
}

describe('pageTarget: LZ4 pages decoded in place', () => {
  it('gives the same RAM, and each LZ4 page event carries the page inside the image', () => {
    const plain = decodeInto(lz4, false);
    const inPlace = decodeInto(lz4, true);
    expect(inPlace.error).toBeUndefined();
    expect(sameBytes(inPlace.image.blocks.get('pc.ram')!, plain.image.blocks.get('pc.ram')!)).toBe(true);
    expect(inPlace.lz4Pages.length).toBe(plain.lz4Pages.length);
    const image = inPlace.image.blocks.get('pc.ram')!;
    for (const ev of inPlace.lz4Pages.filter((p) => p.block.idstr === 'pc.ram')) {
      expect(ev.data.buffer).toBe(image.buffer);
      expect(ev.data.byteOffset).toBe(image.byteOffset + ev.offset);
    }
  });

  it('the transcoder wired with it writes the same bytes, both ways', () => {
    for (const [input, options] of [
      [lz4, {}],
      [fx.stream, { compress: { codec: 'lz4' as const } }],
    ] as const) {
      const parts: Uint8Array[] = [];
      const t = new Transcoder((c) => parts.push(c), options);
      const d = new StreamDecoder(t.handle, { ...options, pageTarget: t.pageTarget });
      d.push(input);
      d.end();
      const unwired: Uint8Array[] = [];
      const u = new Transcoder((c) => unwired.push(c), options);
      const ud = new StreamDecoder(u.handle, options);
      ud.push(input);
      ud.end();
      expect(sameBytes(concatChunks(parts), concatChunks(unwired))).toBe(true);
    }
    expect(sameBytes(transcodeBytes(lz4), transcodeBytes(fx.stream))).toBe(true);
  });

  it("the input's iteration digests are checked over the pages decoded in place", () => {
    const digested = transcodeBytes(fx.stream, { compress: { codec: 'lz4' }, digest: 'xxh64' });
    const t = new Transcoder(() => {});
    const d = new StreamDecoder(t.handle, { pageTarget: t.pageTarget });
    d.push(digested);
    d.end();
    expect(t.ram.checked).toBeGreaterThan(0);
    expect(t.ram.pagesChecked).toBeGreaterThan(1000);
    // a digest record whose last byte is flipped fails the same check
    const bad = digested.slice();
    let digestEnd = -1;
    new StreamDecoder((ev) => {
      if (ev.type === 'ram-digest' && digestEnd < 0) digestEnd = ev.offset + ev.wireBytes;
    }).push(digested);
    expect(digestEnd).toBeGreaterThan(0);
    bad[digestEnd - 1]! ^= 1;
    const u = new Transcoder(() => {});
    expect(() => {
      const e = new StreamDecoder(u.handle, { pageTarget: u.pageTarget });
      e.push(bad);
      e.end();
    }).toThrow(/digest mismatch/);
  });

  it('a corrupt LZ4 payload fails as without it, and leaves the target page as it was', () => {
    const first = firstLz4Payload(lz4);
    const bytes = lz4.slice();
    bytes.fill(0xff, first.dataOffset, first.dataOffset + first.compressedBytes!); // a literal run past the block
    const plain = decodeInto(bytes, false);
    const image = new RamImage();
    const inPlace = decodeInto(bytes, true, image);
    expect(plain.error?.code).toBe('DECOMPRESS');
    expect(inPlace.error?.code).toBe(plain.error?.code);
    expect(inPlace.error?.offset).toBe(first.dataOffset);
    expect(inPlace.error?.message).toBe(plain.error?.message);
    const ram = image.blocks.get(first.block.idstr)!;
    expect(ram.subarray(first.offset, first.offset + first.pageSize).every((b) => b === 0)).toBe(true);
  });

  it('a record past its RAMBlock is never decoded into the image: BAD_OFFSET as without it', () => {
    const first = firstLz4Payload(lz4);
    const bytes = lz4.slice();
    const header = first.dataOffset - 4 - 8;
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    const flags = view.getUint32(header + 4) & 0xfff;
    view.setUint32(header, 0);
    view.setUint32(header + 4, first.block.length + flags); // one page past the block's end
    let asked = 0;
    const image = new RamImage();
    let error: MigstreamError | undefined;
    try {
      const d = new StreamDecoder(
        (ev) => {
          if (ev.type === 'ram-blocks') image.setBlocks(ev.blocks);
          else if (ev.type === 'page') image.apply(ev);
        },
        {
          pageTarget: (b, offset, size) => {
            asked++;
            expect(offset + size).toBeLessThanOrEqual(b.length);
            return image.pageTarget(b.idstr, offset, size);
          },
        },
      );
      d.push(bytes);
      d.end();
    } catch (e) {
      error = e as MigstreamError;
    }
    const plain = decodeInto(bytes, false);
    expect(error?.code).toBe('BAD_OFFSET');
    expect(error?.offset).toBe(plain.error?.offset);
    expect(error?.offset).toBe(header);
    expect(asked).toBeGreaterThan(0); // the records before it were decoded in place
  });
});
