import { MigstreamError } from '../../src/codec/errors.js';
import { ChannelReader } from '../../src/multifd/channel-reader.js';

/** Reads a whole channel and returns the typed error it must end in (fails the test when there is none). */
export function channelError(bytes: Uint8Array, name: string): MigstreamError {
  const reader = new ChannelReader(4096, name);
  try {
    reader.push(bytes);
    reader.end();
    while (reader.next());
  } catch (e) {
    if (e instanceof MigstreamError) return e;
    throw e;
  }
  throw new Error(`channel ${name} read to its end without an error`);
}
