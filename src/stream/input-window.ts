import { EMPTY } from './bytes.js';

/**
 * The decoder's input: the chunk being parsed (`buf` from `pos`, at stream
 * offset `base`) and the chunks pushed after it, joined only when a record
 * needs bytes from more than one.
 */
export class InputWindow {
  buf: Uint8Array = EMPTY;
  pos = 0;
  base = 0;
  pending: Uint8Array[] = [];
  pendingBytes = 0;

  /**
   * Makes the buffered bytes parseable by run(), copying as little as it can:
   * a consumed buffer is replaced by the next chunk; a chunk that follows the
   * buffer in the same ArrayBuffer (a slab reader) is joined as a view; a unit
   * that spans two chunks gets a small buffer of its own (the rest of this
   * chunk and the bytes of the next one it needs), after which the next chunk
   * is parsed in place. Only otherwise is everything pending merged.
   */
  compact(needed: number): void {
    if (this.pendingBytes === 0) return;
    const rest = this.buf.length - this.pos;
    const next = this.pending[0]!;
    if (rest === 0) {
      this.base += this.buf.length;
      this.buf = next;
      this.pos = 0;
      this.pending.shift();
      this.pendingBytes -= next.length;
      return;
    }
    if (next.buffer === this.buf.buffer && next.byteOffset === this.buf.byteOffset + this.buf.length) {
      // every pending chunk that continues the buffer in place joins it
      let end = next.byteOffset + next.length;
      let k = 1;
      for (; k < this.pending.length; k++) {
        const p = this.pending[k]!;
        if (p.buffer !== next.buffer || p.byteOffset !== end) break;
        end += p.length;
      }
      this.base += this.pos;
      const start = this.buf.byteOffset + this.pos;
      this.buf = new Uint8Array(next.buffer, start, end - start);
      this.pos = 0;
      for (const p of this.pending.splice(0, k)) this.pendingBytes -= p.length;
      return;
    }
    const want = needed - (this.base + this.buf.length);
    if (want > 0 && want < next.length && rest <= 16384 && want <= 1 << 20) {
      const bridge = new Uint8Array(rest + want);
      bridge.set(this.buf.subarray(this.pos), 0);
      bridge.set(next.subarray(0, want), rest);
      this.pending[0] = next.subarray(want);
      this.pendingBytes -= want;
      this.base += this.pos;
      this.buf = bridge;
      this.pos = 0;
      return;
    }
    const merged = new Uint8Array(rest + this.pendingBytes);
    merged.set(this.buf.subarray(this.pos), 0);
    let at = rest;
    for (const p of this.pending) {
      merged.set(p, at);
      at += p.length;
    }
    this.base += this.pos;
    this.buf = merged;
    this.pos = 0;
    this.pending = [];
    this.pendingBytes = 0;
  }
}
