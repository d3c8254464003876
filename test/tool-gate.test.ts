import { afterEach, describe, expect, it, vi } from 'vitest';
import { toolGate } from './support/tools.js';

// The gate that keeps CI from passing a test by skipping it: a missing tool throws under CI.
describe('toolGate', () => {
  afterEach(() => vi.unstubAllEnvs());

  it('runs a tool that is there', () => {
    expect(toolGate([process.execPath, '--version'], 'a test')).toBe(true);
  });

  it('skips without a missing tool outside CI, and throws under CI', () => {
    vi.stubEnv('CI', '');
    vi.stubEnv('MIGSTREAM_REQUIRE_TOOLS', '');
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    expect(toolGate(['migstream-no-such-tool'], 'a test')).toBe(false);
    expect(warn).toHaveBeenCalledOnce();
    warn.mockRestore();
    vi.stubEnv('CI', 'true');
    expect(() => toolGate(['migstream-no-such-tool'], 'a test')).toThrow(/a test needs migstream-no-such-tool, which CI must install/);
    vi.stubEnv('CI', '');
    vi.stubEnv('MIGSTREAM_REQUIRE_TOOLS', '1');
    expect(() => toolGate(['migstream-no-such-tool'], 'a test')).toThrow(/CI must install/);
  });
});
