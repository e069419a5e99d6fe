// API tokens, roles and dashboard sessions, black-box: a real ApiServer on a free port with a restPlugin guarding a few
// test routes, a real SQLite token file, real HTTP with fetch. The stores themselves: token-store-conformance.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import Fastify, { type FastifyInstance } from 'fastify';
import { request as httpRequest } from 'node:http';
import { restPlugin, SessionStore, type AuthOptions } from '../../src/api/auth.js';
import { Metrics } from '../../src/core/metrics.js';
import { ApiServer, errorResponses } from '../../src/api/server.js';
import { roleAtLeast, SqliteTokenStore, tokensPath, type Role } from '../../src/api/tokens.js';
import { ManualClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/logger.js';
import { tempDir } from '../helpers/context.js';

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;

const ThingBody = Type.Object({ name: Type.String() });

function things(app: FastifyInstance): void {
  app.get(
    '/api/v1/things',
    { schema: { response: { 200: Type.Object({ items: Type.Array(Type.String()), who: Type.String(), via: Type.String() }), ...errorResponses } } },
    (req) => Promise.resolve({ items: ['a'], who: req.principal!.name, via: req.principal!.via }),
  );
  app.post<{ Body: Static<typeof ThingBody> }>(
    '/api/v1/things',
    { config: { role: 'operator' }, schema: { body: ThingBody, response: { 201: Type.Object({ created: Type.String() }), ...errorResponses } } },
    (req, reply) => {
      void reply.code(201);
      return Promise.resolve({ created: req.body.name });
    },
  );
  app.delete(
    '/api/v1/things/:id',
    { config: { role: 'admin' }, schema: { params: Type.Object({ id: Type.String() }), response: { 204: Type.Null(), ...errorResponses } } },
    (_req, reply) => reply.code(204).send(),
  );
  app.get(
    '/api/v1/open',
    { config: { public: true }, schema: { response: { 200: Type.Object({ open: Type.Boolean(), principal: Type.Boolean() }) } } },
    (req) => Promise.resolve({ open: true, principal: req.principal !== undefined }),
  );
}

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown> | undefined;
}

async function setup(o: { trustProxy?: string[]; rateLimits?: AuthOptions['rateLimits'] } = {}) {
  const dir = tempDir('backhaul-auth-');
  const clock = new ManualClock(T0);
  const tokens = SqliteTokenStore.open(tokensPath(dir.path), { clock });
  const sessions = new SessionStore({ clock });
  const metrics = new Metrics();
  const server = new ApiServer({
    host: '127.0.0.1',
    port: 0,
    logger: silentLogger(),
    ...(o.trustProxy ? { trustProxy: o.trustProxy } : {}),
    plugins: [
      restPlugin({ tokens, sessions, clock, metrics, ...(o.rateLimits ? { rateLimits: o.rateLimits } : {}) }, things),
      // Another plugin, like device bootstrap: the REST API's hook must not reach it.
      (app) => {
        app.get('/other/ping', { schema: { response: { 200: Type.Object({ pong: Type.Boolean() }) } } }, () => Promise.resolve({ pong: true }));
      },
    ],
  });
  await server.start();
  const call = async (method: string, path: string, o: { token?: string; cookie?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> => {
    const headers: Record<string, string> = { ...o.headers };
    if (o.token !== undefined) headers['authorization'] = `Bearer ${o.token}`;
    if (o.cookie !== undefined) headers['cookie'] = o.cookie;
    if (o.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${server.url}${path}`, { method, headers, ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}) });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
  };
  /** A request from a chosen loopback address (fetch cannot bind one). */
  const callFrom = (from: string, method: string, path: string, o: { body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const body = o.body !== undefined ? JSON.stringify(o.body) : undefined;
      const req = httpRequest(
        `${server.url}${path}`,
        { method, localAddress: from, headers: { ...o.headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => {
            const headers = new Headers();
            for (const [k, v] of Object.entries(res.headers)) {
              if (typeof v === 'string') headers.set(k, v);
              else if (Array.isArray(v)) for (const x of v) headers.append(k, x);
            }
            resolve({ status: res.statusCode ?? 0, headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined });
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  return {
    dir,
    clock,
    tokens,
    sessions,
    metrics,
    call,
    callFrom,
    /** Log in; returns the `name=value` pair to send back as Cookie, and the Set-Cookie line. */
    async login(token: string): Promise<{ answer: Answer; cookie: string; setCookie: string }> {
      const answer = await call('POST', '/api/v1/session', { body: { token } });
      const setCookie = answer.headers.getSetCookie()[0] ?? '';
      return { answer, cookie: setCookie.split(';')[0]!, setCookie };
    },
    async close() {
      await server.stop();
      tokens.close();
      dir.cleanup();
    },
  };
}

function errorOf(a: Answer): { code: string; message: string; path?: string } {
  return (a.body?.['error'] ?? {}) as { code: string; message: string; path?: string };
}

function assertError(a: Answer, status: number, code: string, path?: string): void {
  assert.equal(a.status, status, JSON.stringify(a.body));
  assert.equal(errorOf(a).code, code);
  if (path !== undefined) assert.equal(errorOf(a).path, path);
  if (status === 401) assert.equal(a.headers.get('www-authenticate'), 'Bearer realm="backhaul"');
}

test('roleAtLeast orders viewer < operator < admin', () => {
  const roles: Role[] = ['viewer', 'operator', 'admin'];
  const got = roles.flatMap((have) => roles.map((need) => `${have}>=${need}:${roleAtLeast(have, need)}`));
  assert.deepEqual(got, [
    'viewer>=viewer:true',
    'viewer>=operator:false',
    'viewer>=admin:false',
    'operator>=viewer:true',
    'operator>=operator:true',
    'operator>=admin:false',
    'admin>=viewer:true',
    'admin>=operator:true',
    'admin>=admin:true',
  ]);
});

test('without a token every non-public route answers 401; public routes and other plugins answer', async (t) => {
  const s = await setup();
  t.after(() => s.close());
  assertError(await s.call('GET', '/api/v1/things'), 401, 'BH_API_UNAUTHENTICATED');
  assertError(await s.call('POST', '/api/v1/things', { body: { name: 'x' } }), 401, 'BH_API_UNAUTHENTICATED');
  // Authentication comes before body validation: a stranger learns nothing about the schema.
  assertError(await s.call('POST', '/api/v1/things', { body: {} }), 401, 'BH_API_UNAUTHENTICATED');
  assertError(await s.call('DELETE', '/api/v1/things/7'), 401, 'BH_API_UNAUTHENTICATED');
  assertError(await s.call('GET', '/api/v1/session'), 401, 'BH_API_UNAUTHENTICATED');

  const open = await s.call('GET', '/api/v1/open');
  assert.equal(open.status, 200);
  assert.deepEqual(open.body, { open: true, principal: false });
  const other = await s.call('GET', '/other/ping');
  assert.equal(other.status, 200);
  assert.deepEqual(other.body, { pong: true });
  // Unknown paths keep the server's own 404.
  assertError(await s.call('GET', '/api/v1/nope'), 404, 'BH_API_NOT_FOUND');
});

test('malformed, unknown and wrong-secret tokens answer 401', async (t) => {
  const s = await setup();
  t.after(() => s.close());
  const { info, token } = s.tokens.create('ops', 'admin');
  const secret = token.slice(`bh_${info.id}_`.length);
  const otherSecret = secret.startsWith('A') ? `B${secret.slice(1)}` : `A${secret.slice(1)}`;
  const unknownId = info.id === '00000000' ? '11111111' : '00000000';
  const bad = [
    'nope',
    `bh_${info.id}`,
    `bh_${info.id}_${secret}x`, // one character too many
    `bh_${info.id.toUpperCase()}_${secret}`,
    `bh_${unknownId}_${secret}`,
    `bh_${info.id}_${otherSecret}`,
  ];
  for (const b of bad) assertError(await s.call('GET', '/api/v1/things', { token: b }), 401, 'BH_API_UNAUTHENTICATED');
  // Not Bearer at all.
  assertError(await s.call('GET', '/api/v1/things', { headers: { authorization: `Basic ${Buffer.from(`x:${token}`).toString('base64')}` } }), 401, 'BH_API_UNAUTHENTICATED');
  // The real one works (so the refusals above are about the token, not the route).
  const ok = await s.call('GET', '/api/v1/things', { token });
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.body, { items: ['a'], who: 'ops', via: 'bearer' });
});

test('roles: viewer reads, operator also writes, admin also deletes; 403 names the code', async (t) => {
  const s = await setup();
  t.after(() => s.close());
  const viewer = s.tokens.create('v', 'viewer').token;
  const operator = s.tokens.create('o', 'operator').token;
  const admin = s.tokens.create('a', 'admin').token;

  assert.equal((await s.call('GET', '/api/v1/things', { token: viewer })).status, 200);
  assertError(await s.call('POST', '/api/v1/things', { token: viewer, body: { name: 'x' } }), 403, 'BH_API_FORBIDDEN');
  // The role check also comes before body validation.
  assertError(await s.call('POST', '/api/v1/things', { token: viewer, body: {} }), 403, 'BH_API_FORBIDDEN');
  assertError(await s.call('DELETE', '/api/v1/things/7', { token: viewer }), 403, 'BH_API_FORBIDDEN');

  assert.equal((await s.call('GET', '/api/v1/things', { token: operator })).status, 200);
  const posted = await s.call('POST', '/api/v1/things', { token: operator, body: { name: 'valve' } });
  assert.equal(posted.status, 201);
  assert.deepEqual(posted.body, { created: 'valve' });
  assertError(await s.call('DELETE', '/api/v1/things/7', { token: operator }), 403, 'BH_API_FORBIDDEN');

  assert.equal((await s.call('GET', '/api/v1/things', { token: admin })).status, 200);
  assert.equal((await s.call('POST', '/api/v1/things', { token: admin, body: { name: 'y' } })).status, 201);
  const del = await s.call('DELETE', '/api/v1/things/7', { token: admin });
  assert.equal(del.status, 204);
  assert.equal(del.body, undefined);
});

test('a schema error on an allowed route answers 400 BH_API_REQUEST with the field path', async (t) => {
  const s = await setup();
  t.after(() => s.close());
  const operator = s.tokens.create('o', 'operator').token;
  assertError(await s.call('POST', '/api/v1/things', { token: operator, body: {} }), 400, 'BH_API_REQUEST', 'body.name');
  assertError(await s.call('POST', '/api/v1/session', { body: {} }), 400, 'BH_API_REQUEST', 'body.token');
});

test('session login sets an HttpOnly SameSite=Strict cookie that alone authenticates; DELETE logs out', async (t) => {
  const s = await setup();
  t.after(() => s.close());
  const { token } = s.tokens.create('dash', 'operator');

  const bad = await s.login(`${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`);
  assertError(bad.answer, 401, 'BH_API_UNAUTHENTICATED');
  assert.equal(bad.setCookie, '');

  const { answer, cookie, setCookie } = await s.login(token);
  assert.equal(answer.status, 200);
  assert.deepEqual(answer.body, { name: 'dash', role: 'operator' });
  assert.equal(answer.headers.get('cache-control'), 'no-store');
  assert.match(cookie, /^bh_session=[A-Za-z0-9_-]{43}$/);
  const attrs = setCookie.split(';').slice(1).map((a) => a.trim().toLowerCase());
  assert.ok(attrs.includes('httponly'), setCookie);
  assert.ok(attrs.includes('samesite=strict'), setCookie);
  assert.ok(attrs.includes('path=/'), setCookie);
  assert.ok(!attrs.includes('secure'), `plain HTTP gets no Secure flag: ${setCookie}`);
  assert.ok(!setCookie.includes(token), 'the cookie is not the token');

  const who = await s.call('GET', '/api/v1/session', { cookie });
  assert.equal(who.status, 200);
  assert.deepEqual(who.body, { name: 'dash', role: 'operator', via: 'session' });
  const viaBearer = await s.call('GET', '/api/v1/session', { token });
  assert.deepEqual(viaBearer.body, { name: 'dash', role: 'operator', via: 'bearer' });

  const read = await s.call('GET', '/api/v1/things', { cookie });
  assert.equal(read.status, 200);
  assert.equal(read.body?.['via'], 'session');
  assert.equal((await s.call('POST', '/api/v1/things', { cookie, body: { name: 'z' } })).status, 201);
  // The session carries the token's role, no more.
  assertError(await s.call('DELETE', '/api/v1/things/1', { cookie }), 403, 'BH_API_FORBIDDEN');
  // A bad Authorization header is not rescued by a good cookie.
  assertError(await s.call('GET', '/api/v1/things', { cookie, token: 'bh_nope' }), 401, 'BH_API_UNAUTHENTICATED');

  const out = await s.call('DELETE', '/api/v1/session', { cookie });
  assert.equal(out.status, 204);
  const cleared = out.headers.getSetCookie()[0] ?? '';
  assert.match(cleared, /^bh_session=;/);
  assert.match(cleared, /Expires=Thu, 01 Jan 1970|Max-Age=0/i);
  assertError(await s.call('GET', '/api/v1/things', { cookie }), 401, 'BH_API_UNAUTHENTICATED');
  assertError(await s.call('GET', '/api/v1/session', { cookie }), 401, 'BH_API_UNAUTHENTICATED');
  // Logging out without a session is fine.
  assert.equal((await s.call('DELETE', '/api/v1/session')).status, 204);
});

test('the session cookie is Secure when the request came over HTTPS', async (t) => {
  // ApiServer speaks plain HTTP; behind a TLS proxy Fastify's trustProxy makes request.protocol 'https'.
  const dir = tempDir('backhaul-auth-');
  const tokens = SqliteTokenStore.open(tokensPath(dir.path));
  const app = Fastify({ trustProxy: true });
  t.after(async () => {
    await app.close();
    tokens.close();
    dir.cleanup();
  });
  await app.register(async (child) => restPlugin({ tokens, sessions: new SessionStore() })(child));
  const { token } = tokens.create('tls', 'viewer');
  const login = (proto: string) =>
    app.inject({ method: 'POST', url: '/api/v1/session', headers: { 'x-forwarded-proto': proto }, payload: { token } });
  const https = await login('https');
  assert.equal(https.statusCode, 200);
  const secure = String(https.headers['set-cookie']);
  assert.match(secure, /; Secure/i);
  assert.match(secure, /HttpOnly/i);
  const http = await login('http');
  assert.equal(http.statusCode, 200);
  assert.doesNotMatch(String(http.headers['set-cookie']), /Secure/i);
});

test('the session cookie is Secure behind a proxy named in trustProxy that says X-Forwarded-Proto: https, and only then', async (t) => {
  const cases: Array<[string, string[] | undefined, boolean]> = [
    ['no trusted proxy: the header is ignored', undefined, false],
    ['another address is the trusted proxy', ['10.0.0.1'], false],
    ['this client is the trusted proxy', ['127.0.0.1'], true],
    ['a trusted range', ['127.0.0.0/8'], true],
  ];
  for (const [what, trustProxy, secure] of cases) {
    const s = await setup(trustProxy ? { trustProxy } : {});
    t.after(() => s.close());
    const { token } = s.tokens.create('tls', 'viewer');
    const a = await s.call('POST', '/api/v1/session', { body: { token }, headers: { 'x-forwarded-proto': 'https' } });
    assert.equal(a.status, 200, what);
    const cookie = a.headers.getSetCookie()[0] ?? '';
    assert.equal(/;\s*Secure/i.test(cookie), secure, `${what}: ${cookie}`);
    const plain = await s.call('POST', '/api/v1/session', { body: { token }, headers: { 'x-forwarded-proto': 'http' } });
    assert.doesNotMatch(plain.headers.getSetCookie()[0] ?? '', /Secure/i, `${what}: plain http`);
  }
});

test('session logins are rate limited per client address: 429 BH_API_RATE_LIMITED with Retry-After, counted; another address logs in', async (t) => {
  const s = await setup({ rateLimits: { session: { burst: 100, perSecond: 100, failuresBeforeBackoff: 3, backoffMs: 2000, maxBackoffMs: 60_000 } } });
  t.after(() => s.close());
  const { token } = s.tokens.create('dash', 'viewer');
  const wrong = { token: 'bh_00000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' };
  for (let i = 0; i < 3; i++) assertError(await s.callFrom('127.0.0.2', 'POST', '/api/v1/session', { body: wrong }), 401, 'BH_API_UNAUTHENTICATED');
  const limited = await s.callFrom('127.0.0.2', 'POST', '/api/v1/session', { body: { token } });
  assertError(limited, 429, 'BH_API_RATE_LIMITED');
  assert.equal(limited.headers.get('retry-after'), '2');
  assert.equal(limited.headers.getSetCookie().length, 0, 'no session for a backed-off address, even with a good token');
  assert.equal(await s.metrics.value('backhaul_api_rate_limited_total', { limit: 'session' }), 1);
  // The real user at another address is not locked out.
  const real = await s.callFrom('127.0.0.1', 'POST', '/api/v1/session', { body: { token } });
  assert.equal(real.status, 200);
  assert.equal(real.headers.getSetCookie().length, 1);
  s.clock.advance(2000);
  assert.equal((await s.callFrom('127.0.0.2', 'POST', '/api/v1/session', { body: { token } })).status, 200, 'after the backoff');
});

test('failed token checks back an address off (429, counted); good tokens are never slowed; another address is not locked out', async (t) => {
  const s = await setup({ rateLimits: { token: { burst: 1, perSecond: 1, failuresBeforeBackoff: 4, backoffMs: 1000, maxBackoffMs: 60_000 } } });
  t.after(() => s.close());
  const { token } = s.tokens.create('script', 'viewer');
  // Many good requests: only failures count.
  for (let i = 0; i < 20; i++) assert.equal((await s.callFrom('127.0.0.2', 'GET', '/api/v1/things', { headers: { authorization: `Bearer ${token}` } })).status, 200);
  const bad = { authorization: 'Bearer bh_00000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' };
  for (let i = 0; i < 4; i++) assertError(await s.callFrom('127.0.0.2', 'GET', '/api/v1/things', { headers: bad }), 401, 'BH_API_UNAUTHENTICATED');
  const held = await s.callFrom('127.0.0.2', 'GET', '/api/v1/things', { headers: { authorization: `Bearer ${token}` } });
  assertError(held, 429, 'BH_API_RATE_LIMITED');
  assert.equal(held.headers.get('retry-after'), '1');
  // A bad session cookie counts too, and the backoff doubles.
  s.clock.advance(1000);
  assertError(await s.callFrom('127.0.0.2', 'GET', '/api/v1/things', { headers: { cookie: 'bh_session=stolen' } }), 401, 'BH_API_UNAUTHENTICATED');
  assert.equal((await s.callFrom('127.0.0.2', 'GET', '/api/v1/things', { headers: bad })).headers.get('retry-after'), '2');
  assert.equal(await s.metrics.value('backhaul_api_rate_limited_total', { limit: 'token' }), 2);
  // No credentials at all is a plain 401 and costs nothing (the dashboard asks before its user logs in).
  const s2 = await setup({ rateLimits: { token: { burst: 1, perSecond: 1, failuresBeforeBackoff: 1, backoffMs: 1000, maxBackoffMs: 1000 } } });
  t.after(() => s2.close());
  for (let i = 0; i < 3; i++) assertError(await s2.call('GET', '/api/v1/things'), 401, 'BH_API_UNAUTHENTICATED');
  // The real client elsewhere goes on.
  assert.equal((await s.callFrom('127.0.0.1', 'GET', '/api/v1/things', { headers: { authorization: `Bearer ${token}` } })).status, 200);
});

test('a revoked token fails at once, over Bearer and through its sessions, also when revoked by another process', async (t) => {
  const s = await setup();
  t.after(() => s.close());
  const { info, token } = s.tokens.create('soon-gone', 'admin');
  const keep = s.tokens.create('stays', 'viewer').token;
  const { cookie } = await s.login(token);
  const { cookie: keepCookie } = await s.login(keep);
  assert.equal((await s.call('GET', '/api/v1/things', { token })).status, 200);
  assert.equal((await s.call('GET', '/api/v1/things', { cookie })).status, 200);

  // As `backhaul tokens revoke` does: its own connection to the same file.
  const cli = SqliteTokenStore.open(tokensPath(s.dir.path));
  try {
    cli.revoke(info.id);
  } finally {
    cli.close();
  }
  assertError(await s.call('GET', '/api/v1/things', { token }), 401, 'BH_API_UNAUTHENTICATED');
  assertError(await s.call('GET', '/api/v1/things', { cookie }), 401, 'BH_API_UNAUTHENTICATED');
  assertError(await s.call('GET', '/api/v1/session', { cookie }), 401, 'BH_API_UNAUTHENTICATED');
  assertError((await s.login(token)).answer, 401, 'BH_API_UNAUTHENTICATED');
  // Other tokens and their sessions are untouched.
  assert.equal((await s.call('GET', '/api/v1/things', { token: keep })).status, 200);
  assert.equal((await s.call('GET', '/api/v1/things', { cookie: keepCookie })).status, 200);
  assert.equal(s.sessions.size, 1, 'the revoked token\'s session was forgotten');
});

test('a session idle for 12 hours ends; activity keeps it alive (HTTP, manual clock)', async (t) => {
  const s = await setup();
  t.after(() => s.close());
  const { token } = s.tokens.create('idle', 'viewer');
  const { cookie } = await s.login(token);
  s.clock.advance(11 * HOUR);
  assert.equal((await s.call('GET', '/api/v1/session', { cookie })).status, 200);
  s.clock.advance(11 * HOUR); // 22 h after login, 11 h after last use
  assert.equal((await s.call('GET', '/api/v1/session', { cookie })).status, 200);
  s.clock.advance(12 * HOUR + 1);
  assertError(await s.call('GET', '/api/v1/session', { cookie }), 401, 'BH_API_UNAUTHENTICATED');
  // The token itself still works.
  assert.equal((await s.call('GET', '/api/v1/session', { token })).status, 200);
});

test('SessionStore: idle expiry, refresh on use, drop, dropToken, least recently used goes at the cap', () => {
  const clock = new ManualClock(T0);
  const st = new SessionStore({ clock, idleMs: 1000, max: 3 });
  const a = st.create('tA');
  assert.match(a, /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(st.create('tA'), a, 'ids are random');
  clock.advance(1000);
  assert.equal(st.resolve(a), 'tA', 'exactly idleMs is still alive');
  clock.advance(1001);
  assert.equal(st.resolve(a), undefined);
  assert.equal(st.resolve(a), undefined);
  assert.equal(st.resolve('not-a-session'), undefined);

  const clock2 = new ManualClock(T0);
  const lru = new SessionStore({ clock: clock2, idleMs: HOUR, max: 3 });
  const s1 = lru.create('t1');
  const s2 = lru.create('t2');
  const s3 = lru.create('t3');
  clock2.advance(10);
  assert.equal(lru.resolve(s1), 't1'); // s1 is now the most recently used; s2 the least
  const s4 = lru.create('t4');
  assert.equal(lru.size, 3);
  assert.equal(lru.resolve(s2), undefined, 'the least recently used was dropped');
  assert.equal(lru.resolve(s1), 't1');
  assert.equal(lru.resolve(s3), 't3');
  assert.equal(lru.resolve(s4), 't4');

  lru.drop(s3);
  assert.equal(lru.resolve(s3), undefined);
  const s5 = lru.create('t1');
  lru.dropToken('t1');
  assert.equal(lru.resolve(s1), undefined);
  assert.equal(lru.resolve(s5), undefined);
  assert.equal(lru.resolve(s4), 't4');

  // Creating a session forgets the idle ones.
  const c4 = new ManualClock(T0);
  const sw = new SessionStore({ clock: c4, idleMs: 1000 });
  sw.create('old1');
  sw.create('old2');
  c4.advance(1001);
  sw.create('new');
  assert.equal(sw.size, 1);

  // The default idle timeout is 12 hours.
  const c3 = new ManualClock(T0);
  const dflt = new SessionStore({ clock: c3 });
  const d = dflt.create('t');
  c3.advance(12 * HOUR);
  assert.equal(dflt.resolve(d), 't');
  c3.advance(12 * HOUR + 1);
  assert.equal(dflt.resolve(d), undefined);
});

test('token store: only the SHA-256 of the secret reaches the disk', (t) => {
  const dir = tempDir('backhaul-auth-');
  t.after(() => dir.cleanup());
  const store = SqliteTokenStore.open(tokensPath(dir.path));
  const { info, token } = store.create('disk', 'operator');
  assert.match(token, /^bh_[0-9a-f]{8}_[A-Za-z0-9_-]{32}$/);
  assert.ok(token.startsWith(`bh_${info.id}_`));
  const secret = token.slice(`bh_${info.id}_`.length);
  // Read while open (the WAL file holds the row) and after close (checkpointed into the main file).
  const bytes = () =>
    Buffer.concat(
      readdirSync(dir.path)
        .filter((n) => n.startsWith('tokens.sqlite'))
        .map((n) => readFileSync(join(dir.path, n))),
    );
  for (const phase of ['open', 'closed']) {
    if (phase === 'closed') store.close();
    const raw = bytes();
    assert.ok(raw.includes('disk'), `${phase}: the row was read (its name is there)`);
    assert.ok(raw.includes(createHash('sha256').update(secret).digest('hex')), `${phase}: the hash is there`);
    assert.ok(!raw.includes(secret), `${phase}: the secret is not`);
    assert.ok(!raw.includes(token), `${phase}: the token is not`);
  }
  const again = SqliteTokenStore.open(tokensPath(dir.path));
  t.after(() => again.close());
  assert.equal(again.verify(token)?.name, 'disk', 'verifies from the hash alone');
});

