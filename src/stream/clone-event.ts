import type { StreamEvent } from './events.js';

/**
 * A copy of `ev` that owns its bytes. The decoder's events borrow views of
 * its buffer, valid only during the callback; keep a clone instead. Events
 * of the stream surface (DecodeStream, decodeEvents) are clones already.
 */
export function cloneEvent(ev: StreamEvent): StreamEvent {
  switch (ev.type) {
    case 'page':
    case 'block-chunk':
      return { ...ev, data: ev.data.slice() };
    case 'ram-digest':
      return { ...ev, digest: ev.digest.slice() };
    case 'command':
    case 'manifest':
      return { ...ev, payload: ev.payload.slice() };
    case 'device-state':
      return { ...ev, bytes: ev.bytes.slice() };
    case 'configuration':
      return { ...ev, configuration: { ...ev.configuration, raw: ev.configuration.raw.slice(), uuid: ev.configuration.uuid?.slice() } };
    case 'dirty-bitmap':
      return { ...ev, record: { ...ev.record, raw: ev.record.raw.slice(), data: ev.record.data?.slice() } };
    case 'header':
    case 'section':
    case 'section-footer':
    case 'ram-blocks':
    case 'ram-flush':
    case 'iteration-end':
    case 'block-progress':
    case 'block-eos':
    case 'warning':
    case 'end':
      return ev; // no borrowed bytes
    default:
      return unreachable(ev);
  }
}

/** The exhaustiveness check of a switch over event types: adding an event type without a case fails to compile. */
export function unreachable(ev: never): never {
  throw new TypeError(`unknown event ${JSON.stringify((ev as { type?: unknown }).type)}`);
}
