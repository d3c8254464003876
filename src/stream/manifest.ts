import { decode, encode } from '@msgpack/msgpack';
import { MigstreamError } from '../codec/errors.js';
import { show } from './extensions/extension.js';
import { SUPPORTED_EXTENSIONS } from './extensions/registry.js';

/**
 * The extension manifest (docs/extension-format.md): which of migstream's
 * own extensions a stream uses, and their parameters, declared once right
 * after the configuration so a reader can refuse the stream before it reads
 * a single page. msgpack-encoded, self-describing and versioned.
 */
export interface ExtensionManifest {
  /** Always "migstream". */
  format: string;
  /** Version of the manifest mechanism itself; readers accept 1. */
  version: number;
  extensions: ExtensionEntry[];
}

export interface ExtensionEntry {
  /** The extension's name (src/stream/extensions/registry.ts lists migstream's). */
  name: string;
  /** The extension's own version; a reader supports versions up to its own. */
  version: number;
  /**
   * A reader that doesn't know this extension must stop (default true). Only
   * extensions that add no records and change no meaning may say false.
   */
  required?: boolean;
  params: Record<string, unknown>;
}

export const MANIFEST_FORMAT = 'migstream';
export const MANIFEST_VERSION = 1;

export function encodeManifest(extensions: ExtensionEntry[]): Uint8Array {
  const bytes = encode({ format: MANIFEST_FORMAT, version: MANIFEST_VERSION, extensions }, { sortKeys: true });
  if (bytes.length > 0xffff) throw new RangeError(`extension manifest of ${bytes.length} bytes: a command record holds at most 65535`);
  return bytes;
}

/**
 * Parses and checks a manifest payload found at `offset` (the record's
 * first byte). Throws BAD_MANIFEST for malformed ones and
 * UNSUPPORTED_EXTENSION when it lists a required extension `supported`
 * doesn't have.
 */
export function decodeManifest(payload: Uint8Array, offset: number, supported: Readonly<Record<string, number>> = SUPPORTED_EXTENSIONS): ExtensionManifest {
  let raw: unknown;
  try {
    // a copy: binary values would otherwise be views of the input, which a reader may refill (decodeStdin)
    raw = decode(payload.slice(), { maxStrLength: 4096, maxArrayLength: 256, maxMapLength: 256, maxBinLength: 4096, maxExtLength: 0 });
  } catch (e) {
    throw new MigstreamError('BAD_MANIFEST', offset, `extension manifest is not valid msgpack: ${(e as Error).message}`);
  }
  const bad = (what: string): never => {
    throw new MigstreamError('BAD_MANIFEST', offset, `extension manifest: ${what}`);
  };
  if (!isMap(raw)) return bad('expected a map');
  if (raw.format !== MANIFEST_FORMAT) bad(`expected format "${MANIFEST_FORMAT}", found ${JSON.stringify(raw.format)}`);
  if (raw.version !== MANIFEST_VERSION) {
    throw new MigstreamError(
      'UNSUPPORTED_EXTENSION',
      offset,
      `extension manifest version ${show(raw.version)}: this migstream reads version ${MANIFEST_VERSION}`,
    );
  }
  if (!Array.isArray(raw.extensions)) return bad('expected an "extensions" array');
  const extensions: ExtensionEntry[] = [];
  const seen = new Set<string>();
  for (const e of raw.extensions as unknown[]) {
    if (!isMap(e) || typeof e.name !== 'string' || !Number.isInteger(e.version) || !isMap(e.params)) {
      return bad('each extension needs a string "name", an integer "version" and a "params" map');
    }
    if (seen.has(e.name)) bad(`extension "${e.name}" listed twice`);
    seen.add(e.name);
    const required = e.required !== false;
    const have = supported[e.name];
    if (required && (have === undefined || (e.version as number) > have)) {
      const why = have === undefined ? 'which this migstream does not support' : `version ${show(e.version)}, newer than the supported ${have}`;
      throw new MigstreamError('UNSUPPORTED_EXTENSION', offset, `the stream uses extension "${e.name}" ${why}`);
    }
    extensions.push({ name: e.name, version: e.version as number, required, params: e.params });
  }
  return { format: MANIFEST_FORMAT, version: MANIFEST_VERSION, extensions };
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}
