/**
 * True when every byte of `page` is zero. Scans 32-bit words when the view is
 * aligned (the common case for pages cut from a RAM image), bytes otherwise.
 */
export function isZeroPage(page: Uint8Array): boolean {
  const n = page.length;
  if ((page.byteOffset & 3) === 0 && (n & 3) === 0) {
    const words = new Uint32Array(page.buffer, page.byteOffset, n >>> 2);
    const end4 = words.length & ~3;
    let i = 0;
    for (; i < end4; i += 4) {
      if ((words[i]! | words[i + 1]! | words[i + 2]! | words[i + 3]!) !== 0) return false;
    }
    for (; i < words.length; i++) if (words[i] !== 0) return false;
    return true;
  }
  for (let i = 0; i < n; i++) if (page[i] !== 0) return false;
  return true;
}
