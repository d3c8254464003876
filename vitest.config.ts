import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/support/setup-node.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // QEMU-backed tests start real VMs: keep files from running QEMU concurrently on 2 cores.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
