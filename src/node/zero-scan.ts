/** Zero pages of each length asked for (in practice one: the page size). */
const zeros = new Map<number, Uint8Array>();

/**
 * Node's zero-page test: a probe of three bytes (most non-zero pages fail
 * there), then Buffer.compare against a zero page, a native memcmp that runs
 * at memory bandwidth where a JS loop does not. Same answers as isZeroPageJs.
 */
export function nodeZeroScan(page: Uint8Array): boolean {
  const n = page.length;
  if (n === 0) return true;
  if ((page[0]! | page[n >>> 1]! | page[n - 1]!) !== 0) return false;
  let zero = zeros.get(n);
  if (zero === undefined) {
    if (zeros.size > 8) zeros.clear();
    zero = new Uint8Array(n);
    zeros.set(n, zero);
  }
  return Buffer.compare(page, zero) === 0;
}
