import { CONFIGS } from '../../fixtures/qemu/lib.mjs';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliDecompressSync } from 'node:zlib';

export const FIXTURE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures', 'qemu');

export interface FixtureManifestEntry {
  name: string;
  [key: string]: unknown;
}

const cache = new Map<string, Uint8Array>();

/**
 * Names of the committed real-QEMU fixtures of generate.mjs (directories holding stream.bin.br
 * whose config is in CONFIGS); dirty-bitmap/ has its own test (test/dirty-bitmap.test.ts).
 */
export function fixtureNames(): string[] {
  const configs = new Set(CONFIGS.map((c) => c.name));
  return readdirSync(FIXTURE_DIR, { withFileTypes: true })
    .filter((d) => d.isDirectory() && configs.has(d.name) && existsSync(join(FIXTURE_DIR, d.name, 'stream.bin.br')))
    .map((d) => d.name)
    .sort();
}

/** A committed fixture file, brotli-decompressed (cached per test process). */
export function fixtureFile(name: string, file: string): Uint8Array {
  const path = join(FIXTURE_DIR, name, `${file}.br`);
  let data = cache.get(path);
  if (!data) {
    const b = brotliDecompressSync(readFileSync(path));
    data = new Uint8Array(b.buffer, b.byteOffset, b.length);
    cache.set(path, data);
  }
  return data;
}

export function hasFixtureFile(name: string, file: string): boolean {
  return existsSync(join(FIXTURE_DIR, name, `${file}.br`));
}

export function queryMigrate(name: string): any {
  return JSON.parse(readFileSync(join(FIXTURE_DIR, name, 'query-migrate.json'), 'utf8'));
}
