import { MigstreamError } from '../codec/errors.js';
import { xbzrleDecode } from '../xbzrle/decode.js';
import type { PageEvent, RamBlockInfo } from './events.js';

/** Where decoded RAM goes: one image per RAMBlock. */
export interface RamSink {
  /** The RAMBlocks of a MEM_SIZE record; `offset` (the record's stream offset) is for errors. */
  setBlocks(blocks: RamBlockInfo[], offset?: number): void;
  /** Applies one page record to the image, in stream order. */
  apply(event: PageEvent): void;
}

/** Applies a page record to `page` (the page's current bytes, updated in place). */
export function applyPage(event: PageEvent, page: Uint8Array): void {
  switch (event.kind) {
    case 'zero':
      page.fill(event.fill);
      return;
    case 'normal':
    case 'lz4':
    case 'compressed': // QEMU lets an inflated page be short: the rest stays as it was
      if (event.encoded) throw new TypeError('applyPage: the page is still compressed (decompress it first)');
      page.set(event.data);
      return;
    case 'xbzrle':
      try {
        xbzrleDecode(event.data, page, event.dataOffset);
      } catch (e) {
        throw e instanceof MigstreamError ? e.withContext({ section: 'ram', ramBlock: event.block.idstr }) : e;
      }
  }
}

/** A RAM sink that can also read back what it holds (transcode and verify need the current pages). */
export interface RamStore extends RamSink {
  /** The current content of one page; valid until the next call on the store. */
  page(idstr: string, offset: number, pageSize: number): Uint8Array;
  /** Copies bytes [start, start + out.length) of a RAMBlock into `out`. */
  read(idstr: string, start: number, out: Uint8Array): void;
  /** Releases what the store holds (files); a no-op in memory. */
  close(): void;
  /**
   * Optional: a writable view of one page where a decoder may put a whole
   * page before apply() is called with that view as its data (the decoder's
   * pageTarget), or undefined where the store has none.
   */
  pageTarget?(idstr: string, offset: number, pageSize: number): Uint8Array | undefined;
}

/** Guest RAM held in memory, one Uint8Array per RAMBlock. */
export class RamImage implements RamStore {
  readonly blocks = new Map<string, Uint8Array>();
  readonly info = new Map<string, RamBlockInfo>();
  private readonly maxBytes: number;
  /** Pages written so far, per RAMBlock. */
  private readonly written = new Map<string, Uint8Array>();

  /** @param maxBytes most RAM this image will allocate (default 8 GiB). */
  constructor(maxBytes = 8 * 2 ** 30) {
    this.maxBytes = maxBytes;
  }

  setBlocks(blocks: RamBlockInfo[], offset = 0): void {
    const total = blocks.reduce((n, b) => n + b.length, 0);
    if (total > this.maxBytes) {
      throw new MigstreamError('LIMIT', offset, `RAM of ${total} bytes exceeds the in-memory image limit of ${this.maxBytes}`);
    }
    for (const b of blocks) {
      const old = this.blocks.get(b.idstr);
      if (!old || old.length !== b.length) {
        this.blocks.set(b.idstr, new Uint8Array(b.length));
        this.written.delete(b.idstr);
      }
      this.info.set(b.idstr, b);
    }
  }

  apply(event: PageEvent): void {
    const image = this.blocks.get(event.block.idstr)!;
    let written = this.written.get(event.block.idstr);
    if (!written) {
      written = new Uint8Array(Math.ceil(image.length / event.pageSize / 8));
      this.written.set(event.block.idstr, written);
    }
    const index = event.offset / event.pageSize;
    const bit = 1 << (index & 7);
    // A zero page never written is zero already: leaving it untouched keeps its memory unallocated.
    if (event.kind === 'zero' && event.fill === 0 && (written[index >>> 3]! & bit) === 0) return;
    written[index >>> 3]! |= bit;
    const data = event.data;
    // decoded in place (pageTarget): already there
    if (data.buffer === image.buffer && data.byteOffset === image.byteOffset + event.offset && data.length === event.pageSize && !event.encoded) return;
    applyPage(event, image.subarray(event.offset, event.offset + event.pageSize));
  }

  pageTarget(idstr: string, offset: number, pageSize: number): Uint8Array | undefined {
    const image = this.blocks.get(idstr);
    return image && offset + pageSize <= image.length ? image.subarray(offset, offset + pageSize) : undefined;
  }

  /** The current content of one page (a view, not a copy). */
  page(idstr: string, offset: number, pageSize: number): Uint8Array {
    return this.blocks.get(idstr)!.subarray(offset, offset + pageSize);
  }

  read(idstr: string, start: number, out: Uint8Array): void {
    out.set(this.blocks.get(idstr)!.subarray(start, start + out.length));
  }

  close(): void {}
}
