/**
 * A differential case as a small recipe instead of a 20 MiB stream: the
 * fixture it came from, how many bytes of its head and tail it keeps, and
 * the bytes in between (hex). Every mutation of one fixture stream has this
 * form, so reproducers and regression cases stay a few hundred bytes.
 */
import { concatBytes } from '../codec/concat.js';

export interface StreamDelta {
  /** Fixture name (fixtures/qemu/NAME). */
  fixture: string;
  /** Bytes kept from the start of the fixture stream. */
  head: number;
  /** Bytes kept from its end (after the head; head + tail <= stream length). */
  tail: number;
  /** The bytes between them, hex. */
  middle: string;
}

/** The smallest delta that turns `base` into `bytes`. */
export function deltaOf(fixture: string, base: Uint8Array, bytes: Uint8Array): StreamDelta {
  const max = Math.min(base.length, bytes.length);
  let head = 0;
  while (head < max && base[head] === bytes[head]) head++;
  let tail = 0;
  while (tail < max - head && base[base.length - 1 - tail] === bytes[bytes.length - 1 - tail]) tail++;
  return { fixture, head, tail, middle: Buffer.from(bytes.subarray(head, bytes.length - tail)).toString('hex') };
}

/** Rebuilds the case's bytes from the fixture stream. */
export function applyDelta(base: Uint8Array, d: StreamDelta): Uint8Array {
  if (d.head + d.tail > base.length || !/^(?:[0-9a-f]{2})*$/i.test(d.middle)) {
    throw new Error(`delta for ${d.fixture} does not fit its ${base.length}-byte stream (head ${d.head}, tail ${d.tail})`);
  }
  return concatBytes([base.subarray(0, d.head), Buffer.from(d.middle, 'hex'), base.subarray(base.length - d.tail)]);
}
