import type { Clock } from './clock.js';

// Rate limits keyed by client address (MQTT logins, API token checks and session logins, bootstrap calls).
//
// Two rules, both per key:
// * attempts: a token bucket (`burst` at once, refilled at `perSecond`), so one address cannot make the process spend
//   its CPU on password hashing or its disk on audit lines;
// * failures: after `failuresBeforeBackoff` failures in a row, the key is refused for `backoffMs`, doubling on each
//   further failure up to `maxBackoffMs`; a success resets it.
// Keys are addresses, never usernames or device ids: an attacker failing logins for a device's name from their own
// address slows only themselves, so they cannot lock the real device out. Memory is bounded by `maxKeys` (the
// oldest-touched key is forgotten first).

export interface RateLimitOptions {
  /** Attempts that may be made at once. */
  readonly burst: number;
  /** Attempts regained per second. */
  readonly perSecond: number;
  /** Failures in a row before the key is backed off. */
  readonly failuresBeforeBackoff: number;
  /** First backoff, doubled for each further failure. */
  readonly backoffMs: number;
  readonly maxBackoffMs: number;
  /** Keys remembered at most. */
  readonly maxKeys?: number;
}

export type RateDecision = { readonly ok: true } | { readonly ok: false; readonly retryAfterMs: number; readonly reason: 'rate' | 'backoff' };

interface Entry {
  tokens: number;
  at: number;
  failures: number;
  blockedUntil: number;
}

export class RateLimiter {
  private readonly keys = new Map<string, Entry>();
  private readonly maxKeys: number;

  constructor(
    private readonly clock: Clock,
    private readonly o: RateLimitOptions,
  ) {
    this.maxKeys = o.maxKeys ?? 10_000;
  }

  /** Takes one attempt for `key`: ok, or refused with how long to wait. */
  attempt(key: string): RateDecision {
    const now = this.clock.now();
    const e = this.entry(key, now);
    if (e.blockedUntil > now) return { ok: false, retryAfterMs: e.blockedUntil - now, reason: 'backoff' };
    e.tokens = Math.min(this.o.burst, e.tokens + ((now - e.at) / 1000) * this.o.perSecond);
    e.at = now;
    if (e.tokens < 1) return { ok: false, retryAfterMs: Math.ceil(((1 - e.tokens) / this.o.perSecond) * 1000), reason: 'rate' };
    e.tokens -= 1;
    return { ok: true };
  }

  /** Records a failed attempt (wrong password, unknown token, refused claim). */
  failure(key: string): void {
    const now = this.clock.now();
    const e = this.entry(key, now);
    e.failures++;
    const over = e.failures - this.o.failuresBeforeBackoff;
    if (over >= 0) e.blockedUntil = now + Math.min(this.o.maxBackoffMs, this.o.backoffMs * 2 ** Math.min(over, 30));
  }

  /** Records a success: the key's failures are forgotten. */
  success(key: string): void {
    const e = this.keys.get(key);
    if (!e) return;
    e.failures = 0;
    e.blockedUntil = 0;
  }

  /**
   * Whether `key` is backed off now, without taking an attempt: for checks that only failures should cost (API
   * tokens on every request), so a client with good credentials is never slowed.
   */
  check(key: string): RateDecision {
    const now = this.clock.now();
    const e = this.keys.get(key);
    if (e && e.blockedUntil > now) return { ok: false, retryAfterMs: e.blockedUntil - now, reason: 'backoff' };
    return { ok: true };
  }

  /** Keys currently remembered (for tests and metrics). */
  get size(): number {
    return this.keys.size;
  }

  private entry(key: string, now: number): Entry {
    let e = this.keys.get(key);
    if (e) {
      // Move to the end: Map keeps insertion order, so the first key is the least recently touched.
      this.keys.delete(key);
    } else {
      e = { tokens: this.o.burst, at: now, failures: 0, blockedUntil: 0 };
      if (this.keys.size >= this.maxKeys) {
        const oldest = this.keys.keys().next();
        if (!oldest.done) this.keys.delete(oldest.value);
      }
    }
    this.keys.set(key, e);
    return e;
  }
}
