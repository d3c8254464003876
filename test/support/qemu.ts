import { qemuAvailable } from '../../fixtures/qemu/lib.mjs';

/**
 * Whether tests that run real QEMU may run. Without QEMU they skip with the
 * reason printed, unless MIGSTREAM_REQUIRE_QEMU=1 (CI), where they fail.
 */
export function qemuGate(): { run: boolean; reason: string } {
  const q = qemuAvailable();
  if (q.ok) return { run: true, reason: '' };
  if (process.env.MIGSTREAM_REQUIRE_QEMU === '1') {
    throw new Error(`MIGSTREAM_REQUIRE_QEMU=1 but QEMU 7.2 is not usable: ${q.reason}`);
  }
  console.warn(`skipping real-QEMU tests: ${q.reason} (install qemu-system-x86 7.2, or set MIGSTREAM_REQUIRE_QEMU=1 to fail instead)`);
  return { run: false, reason: q.reason ?? '' };
}
