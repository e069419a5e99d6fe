// Retry delays: exponential, capped, with "equal jitter" (half the step fixed, half random), so many clients that
// failed together do not come back together, and none waits less than half its step.

/** The wait before retry number `attempt` (0 for the first): between half of and the whole of min·2^attempt, capped at max, never under min. */
export function backoffMs(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const step = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return Math.max(minMs, Math.round(step / 2 + random() * (step / 2)));
}
