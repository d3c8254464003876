/** Durations in ms, summarised as count / median / p99 / max. */
export class LatencyLog {
  private readonly values: number[] = [];

  add(ms: number): void {
    this.values.push(ms);
  }

  get count(): number {
    return this.values.length;
  }

  summary(): { count: number; medianMs: number; p99Ms: number; maxMs: number } {
    const v = [...this.values].sort((a, b) => a - b);
    const at = (q: number) => (v.length === 0 ? 0 : v[Math.min(v.length - 1, Math.floor(q * v.length))]!);
    return { count: v.length, medianMs: round(at(0.5)), p99Ms: round(at(0.99)), maxMs: round(v[v.length - 1] ?? 0) };
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
