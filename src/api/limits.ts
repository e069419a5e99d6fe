// Per-address rate limits of the HTTP API (src/core/ratelimit.ts): session logins, failed token checks, bootstrap
// calls. Keys are the client address as Fastify sees it (`request.ip`: the socket's peer, or the client a trusted
// proxy names in X-Forwarded-For when `api.trustProxy` lists it), never a token or MAC, so an attacker slows only
// their own address and a real client elsewhere is never locked out. A refusal is 429 BH_API_RATE_LIMITED with
// Retry-After (whole seconds), counted in backhaul_api_rate_limited_total{limit}.
import type { Metrics } from '../core/metrics.js';
import type { RateDecision, RateLimitOptions } from '../core/ratelimit.js';
import { ApiError } from './server.js';

export type LimitName = 'session' | 'token' | 'bootstrap';

export interface ApiRateLimits {
  /** POST /api/v1/session: every attempt takes from the bucket; bad tokens back the address off. */
  readonly session: RateLimitOptions;
  /** Bearer tokens and session cookies on every REST request: only failures count (good ones are never slowed). */
  readonly token: RateLimitOptions;
  /** /bootstrap/v1/credentials and /config: every call takes from the bucket; refusals back the address off. */
  readonly bootstrap: RateLimitOptions;
}

export const DEFAULT_API_RATE_LIMITS: ApiRateLimits = {
  session: { burst: 10, perSecond: 0.5, failuresBeforeBackoff: 5, backoffMs: 1000, maxBackoffMs: 5 * 60_000 },
  token: { burst: 20, perSecond: 1, failuresBeforeBackoff: 10, backoffMs: 1000, maxBackoffMs: 5 * 60_000 },
  // Devices poll until an operator opens their claim window: the backoff stays short enough for them to notice.
  bootstrap: { burst: 10, perSecond: 0.2, failuresBeforeBackoff: 5, backoffMs: 2000, maxBackoffMs: 5 * 60_000 },
};

/** Throws 429 BH_API_RATE_LIMITED (counted) when `d` refuses. */
export function enforce(d: RateDecision, limit: LimitName, metrics: Metrics | undefined): void {
  if (d.ok) return;
  metrics?.apiRateLimited.inc({ limit });
  const seconds = Math.max(1, Math.ceil(d.retryAfterMs / 1000));
  throw new ApiError('BH_API_RATE_LIMITED', `too many attempts from this address; retry in ${seconds} s`, { headers: { 'retry-after': String(seconds) } });
}
