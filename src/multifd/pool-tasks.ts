import { MigstreamError, type ErrorCode, type ErrorContext } from '../codec/errors.js';
import { MultifdRecoder, type MultifdRelayOptions } from './recode.js';

/**
 * One step of one multifd channel's re-encoding, as plain data for a worker: the channel's
 * recoder (its inflate and deflate state) lives in the worker that opened it, under `key`.
 */
export interface RecodeTask {
  op: 'multifd-recode';
  key: number;
  /** First task of a channel: create its recoder. */
  open?: { options: MultifdRelayOptions; pageSize: number; label: string };
  /** Bytes from the source, in order (socket reads as they came: transferred, not copied into one buffer). */
  chunks?: Uint8Array[];
  /** The source closed the connection: finish (a cut packet is TRUNCATED) and drop the state. */
  end?: boolean;
}

export interface RecodeResult {
  op: 'multifd-recode';
  /** Bytes for the destination, in order (complete packets only): each packet's header and payload, each its own buffer. */
  out: Uint8Array[];
  /** Packets recoded by the channel so far. */
  packets: number;
  /** The channel's stream was bad (its state is gone): rebuilt as a MigstreamError by the caller. */
  error?: { code?: ErrorCode; offset?: number; detail: string; context?: ErrorContext };
}

const recoders = new Map<number, { recoder: MultifdRecoder; out: Uint8Array[] }>();

/** Runs a RecodeTask in this thread (a pool worker, or inline): a stream error is returned, not thrown, so the pool stays up. */
export function runRecodeTask(t: RecodeTask): RecodeResult {
  let s = recoders.get(t.key);
  try {
    if (t.open) {
      const out: Uint8Array[] = [];
      s = { recoder: new MultifdRecoder(t.open.options, (c) => out.push(c), t.open.pageSize, t.open.label), out };
      recoders.set(t.key, s);
    }
    if (!s) throw new Error(`multifd channel ${t.key} was not opened in this worker`);
    for (const c of t.chunks ?? []) s.recoder.push(c);
    if (t.end) {
      recoders.delete(t.key);
      s.recoder.end();
    }
    return { op: 'multifd-recode', out: s.out.splice(0), packets: s.recoder.packets };
  } catch (e) {
    recoders.delete(t.key);
    const error =
      e instanceof MigstreamError ? { code: e.code, offset: e.offset, detail: e.detail, context: e.context } : { detail: (e as Error)?.message ?? String(e) };
    return { op: 'multifd-recode', out: s ? s.out.splice(0) : [], packets: s?.recoder.packets ?? 0, error };
  }
}

/** The result's error as the caller throws it. */
export function recodeError(r: RecodeResult): Error | undefined {
  const e = r.error;
  if (!e) return undefined;
  return e.code !== undefined ? new MigstreamError(e.code, e.offset ?? 0, e.detail, e.context) : new Error(e.detail);
}

/** The buffers behind `parts`, once each (a transfer list: the recoder's output buffers are its own). */
export function transferList(parts: readonly Uint8Array[]): ArrayBuffer[] {
  const seen = new Set<ArrayBuffer>();
  for (const p of parts) if (p.buffer instanceof ArrayBuffer) seen.add(p.buffer);
  return [...seen];
}
