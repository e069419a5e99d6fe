// Who is calling the REST API, and may they: an `onRequest` hook that takes `Authorization: Bearer bh_…` or the
// dashboard's `bh_session` cookie, sets `request.principal`, and refuses with 401 (no or bad credentials) or 403 (role
// too low for the route's `config.role`, default viewer). Routes with `config.public: true` pass untouched.
//
// The hook lives in the REST API's own plugin context (restPlugin), so the device bootstrap routes, another plugin,
// never see it. Sessions are in memory only: a restart logs everyone out, which is fine for a dashboard. A session
// holds its token's id and is checked against the token file on every request, so revoking a token (also from the
// CLI, in another process) ends its sessions at once.
import { createHash, randomBytes } from 'node:crypto';
import fastifyCookie from '@fastify/cookie';
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { systemClock, type Clock } from '../core/clock.js';
import type { Metrics } from '../core/metrics.js';
import { RateLimiter } from '../core/ratelimit.js';
import { DEFAULT_API_RATE_LIMITS, enforce, type ApiRateLimits } from './limits.js';
import { ApiError, errorResponses, type ApiPlugin } from './server.js';
import { roleAtLeast, type Role, type TokenStore } from './tokens.js';

export interface ApiPrincipal {
  tokenId: string;
  name: string;
  role: Role;
  via: 'bearer' | 'session';
}
export type Principal = ApiPrincipal;

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the REST API's auth hook on every route that is not public. */
    principal?: ApiPrincipal;
  }
  interface FastifyContextConfig {
    /** The least role a route needs (default viewer). */
    role?: Role;
    /** No token needed. */
    public?: boolean;
  }
}

export const SESSION_COOKIE = 'bh_session';
export const SESSION_IDLE_MS = 12 * 60 * 60 * 1000;
export const MAX_SESSIONS = 10_000;

export interface SessionStoreOptions {
  /** A session unused this long is forgotten (default 12 h). */
  readonly idleMs?: number;
  /** At most this many sessions; the least recently used goes first (default 10,000). */
  readonly max?: number;
  readonly clock?: Clock;
}

interface Session {
  readonly tokenId: string;
  lastSeen: number;
}

/** Dashboard sessions, in memory, keyed by the SHA-256 of the session id (a heap dump holds no usable cookie). */
export class SessionStore {
  readonly idleMs: number;
  private readonly max: number;
  private readonly clock: Clock;
  // Insertion order is use order (resolve re-inserts), so the first entries are the least recently used.
  private readonly sessions = new Map<string, Session>();

  constructor(o: SessionStoreOptions = {}) {
    this.idleMs = o.idleMs ?? SESSION_IDLE_MS;
    this.max = Math.max(1, o.max ?? MAX_SESSIONS);
    this.clock = o.clock ?? systemClock;
  }

  get size(): number {
    return this.sessions.size;
  }

  /** A new session for the token; returns its id (32 random bytes, base64url), for the cookie. */
  create(tokenId: string): string {
    this.sweep();
    while (this.sessions.size >= this.max) {
      const oldest = this.sessions.keys().next();
      if (oldest.done === true) break;
      this.sessions.delete(oldest.value);
    }
    const id = randomBytes(32).toString('base64url');
    this.sessions.set(key(id), { tokenId, lastSeen: this.clock.now() });
    return id;
  }

  /** The session's token id, refreshing it; undefined when unknown or idle too long (then it is forgotten). */
  resolve(id: string): string | undefined {
    const k = key(id);
    const s = this.sessions.get(k);
    if (!s) return undefined;
    this.sessions.delete(k);
    const now = this.clock.now();
    if (now - s.lastSeen > this.idleMs) return undefined;
    s.lastSeen = now;
    this.sessions.set(k, s);
    return s.tokenId;
  }

  drop(id: string): void {
    this.sessions.delete(key(id));
  }

  /** Ends every session of a token (when it is revoked). */
  dropToken(tokenId: string): void {
    for (const [k, s] of this.sessions) if (s.tokenId === tokenId) this.sessions.delete(k);
  }

  /** Forgets idle sessions; they sit at the front, so this stops at the first live one. */
  private sweep(): void {
    const now = this.clock.now();
    for (const [k, s] of this.sessions) {
      if (now - s.lastSeen <= this.idleMs) break;
      this.sessions.delete(k);
    }
  }
}

function key(sessionId: string): string {
  return createHash('sha256').update(sessionId, 'utf8').digest('hex');
}

export interface AuthOptions {
  readonly tokens: TokenStore;
  readonly sessions: SessionStore;
  /** Per client address (limits.ts); default DEFAULT_API_RATE_LIMITS. */
  readonly rateLimits?: Partial<Pick<ApiRateLimits, 'session' | 'token'>>;
  readonly clock?: Clock;
  readonly metrics?: Metrics;
}

const UNAUTHENTICATED_HEADERS = { 'www-authenticate': 'Bearer realm="backhaul"' };

function unauthenticated(why: string): ApiError {
  return new ApiError('BH_API_UNAUTHENTICATED', why, { headers: UNAUTHENTICATED_HEADERS });
}

const RoleSchema = Type.Union([Type.Literal('viewer'), Type.Literal('operator'), Type.Literal('admin')]);

export const SessionLogin = Type.Object({
  token: Type.String({ minLength: 1, maxLength: 200, description: 'An API token, `bh_<id>_<secret>`.' }),
});
export const SessionAnswer = Type.Object({ name: Type.String(), role: RoleSchema });
export const SessionWho = Type.Object({ name: Type.String(), role: RoleSchema, via: Type.Union([Type.Literal('bearer'), Type.Literal('session')]) });
export type SessionWho = Static<typeof SessionWho>;

/** Who the request's credentials name, or why there is no one. */
function authenticate(req: FastifyRequest, o: AuthOptions): ApiPrincipal {
  const header = req.headers.authorization;
  // A header, when sent, is the only credential looked at: a bad one is not rescued by a cookie.
  if (header !== undefined) {
    const m = /^Bearer +(\S+) *$/i.exec(header);
    if (!m) throw unauthenticated('the Authorization header must be "Bearer bh_…"');
    const info = o.tokens.verify(m[1]!);
    if (!info) throw unauthenticated('unknown, malformed or revoked API token');
    return { tokenId: info.id, name: info.name, role: info.role, via: 'bearer' };
  }
  const sid = req.cookies[SESSION_COOKIE];
  if (sid) {
    const tokenId = o.sessions.resolve(sid);
    const info = tokenId !== undefined ? o.tokens.touch(tokenId) : undefined;
    if (info) return { tokenId: info.id, name: info.name, role: info.role, via: 'session' };
    // Its token was revoked, or it expired: forget it for good.
    o.sessions.drop(sid);
    if (tokenId !== undefined) o.sessions.dropToken(tokenId);
    throw unauthenticated('the session has ended; log in again');
  }
  throw unauthenticated('an API token is required: Authorization: Bearer bh_…');
}

/**
 * `Secure` when the request came over TLS, or through a trusted proxy (`api.trustProxy`) that says
 * `X-Forwarded-Proto: https`: Fastify's `protocol` believes that header only from the proxies it was told to trust.
 */
function cookieOptions(req: FastifyRequest) {
  return { httpOnly: true, sameSite: 'strict', path: '/', secure: req.protocol === 'https' } as const;
}

function noStore(reply: FastifyReply): void {
  void reply.header('cache-control', 'no-store');
}

/**
 * Adds the token check to `app` (a plugin context: it applies to the routes registered there) and the session
 * routes. Call it before registering the routes it guards.
 */
export async function registerAuth(app: FastifyInstance, o: AuthOptions): Promise<void> {
  // Once per context chain: registering it twice fails on its decorators.
  if (!app.hasDecorator('parseCookie')) await app.register(fastifyCookie);
  if (!app.hasRequestDecorator('principal')) app.decorateRequest('principal', undefined);

  const clock = o.clock ?? systemClock;
  const sessionLimiter = new RateLimiter(clock, o.rateLimits?.session ?? DEFAULT_API_RATE_LIMITS.session);
  // Only failed checks count: a client with a good token is never slowed, one guessing tokens is backed off.
  const tokenLimiter = new RateLimiter(clock, o.rateLimits?.token ?? DEFAULT_API_RATE_LIMITS.token);

  app.addHook('onRequest', (req, _reply, done) => {
    const config = req.routeOptions.config;
    if (config.public === true) return done();
    try {
      const presented = req.headers.authorization !== undefined || req.cookies[SESSION_COOKIE] !== undefined;
      if (presented) enforce(tokenLimiter.check(req.ip), 'token', o.metrics);
      let p: ApiPrincipal;
      try {
        p = authenticate(req, o);
      } catch (e) {
        if (presented) tokenLimiter.failure(req.ip);
        throw e;
      }
      tokenLimiter.success(req.ip);
      req.principal = p;
      const need = config.role ?? 'viewer';
      if (!roleAtLeast(p.role, need)) {
        throw new ApiError('BH_API_FORBIDDEN', `this needs the ${need} role; token "${p.name}" is ${p.role}`);
      }
      done();
    } catch (e) {
      done(e as Error);
    }
  });

  app.post<{ Body: Static<typeof SessionLogin> }>(
    '/api/v1/session',
    {
      config: { public: true },
      schema: {
        operationId: 'createSession',
        summary: 'Log in with an API token: sets the dashboard session cookie',
        tags: ['session'],
        body: SessionLogin,
        response: { 200: SessionAnswer, ...errorResponses },
      },
    },
    (req, reply) => {
      noStore(reply);
      enforce(sessionLimiter.attempt(req.ip), 'session', o.metrics);
      const info = o.tokens.verify(req.body.token);
      if (!info) {
        sessionLimiter.failure(req.ip);
        throw unauthenticated('unknown, malformed or revoked API token');
      }
      sessionLimiter.success(req.ip);
      // A login replaces the session the browser had.
      const old = req.cookies[SESSION_COOKIE];
      if (old) o.sessions.drop(old);
      void reply.setCookie(SESSION_COOKIE, o.sessions.create(info.id), cookieOptions(req));
      return Promise.resolve({ name: info.name, role: info.role });
    },
  );

  app.get(
    '/api/v1/session',
    { schema: { operationId: 'getSession', summary: 'Who the token or session cookie is', tags: ['session'], response: { 200: SessionWho, ...errorResponses } } },
    (req, reply): Promise<SessionWho> => {
      noStore(reply);
      const p = req.principal!;
      return Promise.resolve({ name: p.name, role: p.role, via: p.via });
    },
  );

  app.delete(
    '/api/v1/session',
    // Public: logging out must work with an expired session too.
    {
      config: { public: true },
      schema: { operationId: 'deleteSession', summary: 'Log out: ends the session and clears its cookie', tags: ['session'], response: { 204: Type.Null(), ...errorResponses } },
    },
    (req, reply) => {
      const sid = req.cookies[SESSION_COOKIE];
      if (sid) o.sessions.drop(sid);
      return reply.clearCookie(SESSION_COOKIE, cookieOptions(req)).code(204).send();
    },
  );
}

/**
 * The REST API's plugin: one Fastify context with the auth hook and session routes (registerAuth), then every
 * registrar's routes, which the hook guards.
 */
export function restPlugin(o: AuthOptions, ...routeRegistrars: Array<(app: FastifyInstance) => void | Promise<void>>): ApiPlugin {
  return async (app) => {
    await registerAuth(app, o);
    for (const register of routeRegistrars) await register(app);
  };
}
