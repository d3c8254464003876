/**
 * The one error type every migstream reader throws for bad input.
 *
 * `code` is stable (match on it, not on the message); `offset` is the absolute
 * byte offset in the stream where the problem was found. Where QEMU has its own
 * wording for the same failure, the message repeats it so users can search it.
 */
export type ErrorCode =
  | 'TRUNCATED' // the input ended inside a record
  | 'BAD_MAGIC'
  | 'BAD_VERSION'
  | 'BAD_CONFIGURATION'
  | 'BAD_SECTION' // unknown section type, id or footer mismatch
  | 'UNSUPPORTED' // valid QEMU input this version of migstream does not handle
  | 'BAD_RAM_RECORD'
  | 'UNKNOWN_RAMBLOCK'
  | 'BAD_OFFSET'
  | 'XBZRLE_DECODE'
  | 'DECOMPRESS'
  | 'BAD_BLOCK_RECORD'
  | 'BAD_COMMAND'
  | 'BAD_VMDESC'
  | 'LIMIT' // a documented limit for hostile input was exceeded
  | 'BAD_MANIFEST' // migstream's extension manifest is malformed or misplaced
  | 'UNSUPPORTED_EXTENSION' // the manifest lists an extension this reader does not support
  | 'DIGEST_MISMATCH' // an iteration digest (extension "iteration-digests") does not match the RAM the pages produced
  | 'TRAILING_DATA'
  // Not a fault of the stream (the CLI exits 1 for these, 3 only for a bad stream):
  | 'INTERNAL' // a handler, a sink or migstream itself threw; `cause` holds what was thrown
  | 'OUTPUT_CLOSED' // the output went away (EPIPE, a cancelled reader): an I/O condition
  | 'ABORTED'; // cancelled through an AbortSignal (streams reject with the signal's reason, an AbortError)

export interface ErrorContext {
  /** Section idstr, e.g. "ram" or "block". */
  section?: string;
  /** RAMBlock idstr, e.g. "pc.ram". */
  ramBlock?: string;
  /** Block-migration device name, e.g. "ide0-hd1". */
  device?: string;
  /** Multifd channel: the id from its handshake (offsets are then within that connection). */
  channel?: number;
}

export class MigstreamError extends Error {
  override readonly name = 'MigstreamError';
  readonly code: ErrorCode;
  readonly offset: number;
  readonly context: ErrorContext;
  /** The message without the offset and context decorations. */
  readonly detail: string;

  constructor(code: ErrorCode, offset: number, detail: string, context: ErrorContext = {}) {
    super(formatMessage(offset, detail, context));
    this.code = code;
    this.offset = offset;
    this.detail = detail;
    this.context = context;
  }

  /** The same error with more context filled in (inner readers don't know the section). */
  withContext(context: ErrorContext): MigstreamError {
    return new MigstreamError(this.code, this.offset, this.detail, { ...context, ...this.context });
  }
}

/** Codes that say nothing about the input: a bug, a closed output, a cancellation. */
export const NOT_STREAM_FAULTS: readonly ErrorCode[] = ['INTERNAL', 'OUTPUT_CLOSED', 'ABORTED'];

/** Whether `e` reports malformed or unsupported input (CLI exit 3), not an I/O failure or a bug. */
export function isStreamFault(e: unknown): boolean {
  return e instanceof MigstreamError && !NOT_STREAM_FAULTS.includes(e.code);
}

/**
 * Thrown by a sink whose output went away (a closed pipe, a cancelled
 * reader). Readers turn it into an OUTPUT_CLOSED MigstreamError.
 */
export class OutputClosedError extends Error {
  override readonly name = 'OutputClosedError';
  constructor(
    /** What the output was, e.g. "stdout" or a file path. */
    readonly output: string,
    reason: string,
  ) {
    super(`output closed: ${output} (${reason})`);
  }
}

/**
 * Anything thrown while a stream was processed, as a MigstreamError: ours
 * pass unchanged, anything else becomes INTERNAL (with `cause`) at `offset`.
 */
export function asMigstreamError(e: unknown, offset: number): MigstreamError {
  if (e instanceof MigstreamError) return e;
  if (e instanceof OutputClosedError) return new MigstreamError('OUTPUT_CLOSED', offset, e.message);
  const err = new MigstreamError('INTERNAL', offset, `internal error: ${(e as Error)?.message ?? String(e)}`);
  (err as { cause?: unknown }).cause = e;
  return err;
}

function formatMessage(offset: number, detail: string, context: ErrorContext): string {
  const where: string[] = [];
  if (context.section !== undefined) where.push(`section "${context.section}"`);
  if (context.ramBlock !== undefined) where.push(`RAMBlock "${context.ramBlock}"`);
  if (context.device !== undefined) where.push(`device "${context.device}"`);
  if (context.channel !== undefined) where.push(`multifd channel ${context.channel}`);
  return `at byte ${offset}: ${detail}${where.length > 0 ? ` (${where.join(', ')})` : ''}`;
}

/**
 * Thrown by ByteReader when a record runs past the bytes buffered so far.
 * Incremental decoders catch it and wait for more input; at end of input it
 * becomes a TRUNCATED MigstreamError. `needed` is the absolute end offset the
 * read required.
 */
export class NeedMoreData {
  constructor(
    readonly needed: number,
    readonly what: string,
  ) {}
}
