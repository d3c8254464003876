// Types of hash-wasm's single-algorithm XXH64 build (a UMD file the package ships without its own .d.ts).
declare module 'hash-wasm/dist/xxhash64.umd.min.js' {
  import type { IHasher } from 'hash-wasm';
  const build: { createXXHash64(seedLow?: number, seedHigh?: number): Promise<IHasher> };
  export default build;
}
