/** A zero-page test: true when every byte of the page is zero. */
export type ZeroScan = (page: Uint8Array) => boolean;

/**
 * True when every byte of `page` is zero. Scans 32-bit words when the view is
 * aligned (the common case for pages cut from a RAM image), bytes otherwise.
 * The portable scan; a host may plug a faster one with setZeroScan().
 */
export function isZeroPageJs(page: Uint8Array): boolean {
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

let scan: ZeroScan = isZeroPageJs;

/**
 * Plugs the host's zero-page test (Node: a native memcmp against a zero
 * page, src/node/zero-scan.ts, ~3-6x the JS loop); undefined restores the
 * portable one. It must answer exactly as isZeroPageJs does.
 */
export function setZeroScan(fn: ZeroScan | undefined): void {
  scan = fn ?? isZeroPageJs;
}

/** True when every byte of `page` is zero (the plugged scan, or the portable one). */
export function isZeroPage(page: Uint8Array): boolean {
  return scan(page);
}
