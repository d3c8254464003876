/**
 * One DataView per buffer, remembered for the next call: pages of a RAM image
 * or a page cache share a few big buffers, so this hits and saves allocating
 * a view per page.
 */
export class DataViewCache {
  private buffer: ArrayBufferLike | null = null;
  private view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));

  of(bytes: Uint8Array): DataView<ArrayBufferLike> {
    if (bytes.buffer !== this.buffer) {
      this.buffer = bytes.buffer;
      this.view = new DataView(bytes.buffer);
    }
    return this.view;
  }
}
