/** The empty payload (zero pages, zero chunks): one shared instance, never written to. */
export const EMPTY: Uint8Array = new Uint8Array(0);

/** `v` in hex, zero-padded to `digits` (error messages). */
export function hex(v: number, digits: number): string {
  return v.toString(16).padStart(digits, '0');
}
