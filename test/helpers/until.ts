// The one polling helper of the tests: wait for a real condition instead of sleeping "long enough". The deadline is a
// test's failure on a machine that is far too slow, never a measured time; the message names what was awaited.

export interface UntilOptions {
  /** What is awaited, for the failure message: `the first reading at the server`. */
  readonly what: string;
  /** Give up after this long (default 15 s). */
  readonly timeoutMs?: number;
  /** How often to ask (default 10 ms). */
  readonly everyMs?: number;
}

/** Resolves once `predicate` holds; rejects naming `what` when it does not within `timeoutMs`. */
export async function until(predicate: () => boolean | Promise<boolean>, opts: UntilOptions): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const everyMs = opts.everyMs ?? 10;
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
