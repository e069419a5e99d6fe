// Device bootstrap over HTTP. A device knows only its MAC address: it asks for its MQTT login (`/credentials`), then,
// logged in with it (HTTP Basic), for its config (`/config`).
//
// The first password goes to the first call only while an operator has the device's claim window open (CLI `devices
// claim open`, REST `POST /api/v1/devices/:id/claim`, a manifest import with a window, a reinstall order), and with
// the claim code printed on its label when it has one. The claim is atomic (`claimCredentials`), so of two concurrent
// calls only one gets a password; it closes the window. Every refusal (unknown MAC, no window, window expired,
// password already taken, wrong code, disabled device, config device) is one identical answer, so MACs cannot be
// enumerated; the metric, the log and (for the cases an operator must hear of) the audit log say which. When a call
// with the right code (or for a device without one) finds the password already taken by an earlier bootstrap call,
// the real device may be the second caller: a critical `device.credentials_claimed_twice` event is raised.
//
// Calls are rate limited per client address (limits.ts). No API tokens here: devices have none, and these routes are
// registered as their own plugin so the REST API's token hook (its own plugin context) never applies to them.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import type { Clock } from '../core/clock.js';
import type { Metrics } from '../core/metrics.js';
import { RateLimiter, type RateLimitOptions } from '../core/ratelimit.js';
import { LogThrottle } from '../core/throttle.js';
import { makeEvent } from '../core/events.js';
import type { HubEvent } from '../core/types.js';
import { generatePassword, hashPassword, verifyPassword } from '../devices/credentials.js';
import type { DeviceStore } from '../devices/store/index.js';
import type { DeviceTopics, TopicScheme } from '../devices/topics.js';
import { normaliseId, type Device } from '../devices/types.js';
import { DEFAULT_API_RATE_LIMITS, enforce } from './limits.js';
import { ApiError, errorResponses, type ApiPlugin } from './server.js';
import { errorText } from '../core/errors.js';

export interface BootstrapOptions {
  readonly store: DeviceStore;
  readonly scheme: TopicScheme;
  readonly clock: Clock;
  /**
   * Where devices reach the MQTT broker; an undefined host is taken from the request (its Host header's hostname).
   * Undefined: no broker devices can use, answered 503.
   */
  readonly broker: () => { host?: string; port: number; tls?: boolean; tlsPort?: number } | undefined;
  /** Called after a device's login is verified (`/config`), to count it in metrics and the like. */
  readonly onLogin?: (device: Device) => void;
  /** Raise a hub event (the hub routes it): `device.credentials_claimed_twice`. */
  readonly raise?: (e: HubEvent) => void;
  /**
   * A password about to be handed out, with the hash the registry will keep: given to an external broker first
   * (brokerSync), so the device can log in with it. A failure answers 503 and leaves the claim untouched.
   */
  readonly passwordIssued?: (device: Device, password: string, hash: string) => Promise<void>;
  readonly metrics?: Metrics;
  /** Per client address, for both routes (default DEFAULT_API_RATE_LIMITS.bootstrap). */
  readonly rateLimit?: RateLimitOptions;
}

export const BOOTSTRAP_PREFIX = '/bootstrap/v1';

const Topics = Type.Object({ status: Type.String(), command: Type.String() });

export const CredentialsQuery = Type.Object({
  mac: Type.String({ minLength: 1, maxLength: 64, description: 'The device MAC address, in any common form.' }),
  code: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'The claim code on the device label, when it has one (or the X-Claim-Code header).' })),
});

export const CredentialsHeaders = Type.Object({
  'x-claim-code': Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'The claim code on the device label (or the `code` query parameter).' })),
});

/** Why a credentials call was refused: counted and logged, never told to the caller. */
export type RefusalReason = 'unknown' | 'disabled' | 'config' | 'claimed' | 'no_window' | 'expired' | 'code';

/** The one answer to every refused credentials call. */
function refused(): ApiError {
  return new ApiError('BH_BOOTSTRAP_REFUSED', 'no credentials for this device now; an operator must open its claim window');
}

export const CLAIMED_TWICE = 'device.credentials_claimed_twice';

export const CredentialsAnswer = Type.Object({
  device: Type.String({ description: 'Canonical device id.' }),
  login: Type.String({ description: 'MQTT username.' }),
  password: Type.String({ description: 'The new password: handed out on this call only, never again.' }),
  broker: Type.Object({
    host: Type.String(),
    port: Type.Integer(),
    tls: Type.Optional(Type.Boolean({ description: '`port` speaks MQTT over TLS (the broker has no plain listener).' })),
    tlsPort: Type.Optional(Type.Integer({ description: 'MQTT over TLS beside the plain `port`, when the broker serves it.' })),
  }),
  baseTopic: Type.String(),
  topics: Topics,
});
export type CredentialsAnswer = Static<typeof CredentialsAnswer>;

export const ConfigHeaders = Type.Object({
  authorization: Type.Optional(Type.String({ description: 'HTTP Basic: the device login and password.' })),
});

export const ConfigAnswer = Type.Object({
  device: Type.String(),
  type: Type.String(),
  config: Type.Object({}, { additionalProperties: true }),
  baseTopic: Type.String(),
  topics: Topics,
});
export type ConfigAnswer = Static<typeof ConfigAnswer>;

const AUTH_HEADERS = { 'www-authenticate': 'Basic realm="backhaul"' };

function unauthorized(): ApiError {
  // One answer for every failure, so a caller learns nothing about which logins exist.
  return new ApiError('BH_BOOTSTRAP_AUTH', 'HTTP Basic login with the device login and password required', { headers: AUTH_HEADERS });
}

/**
 * The user and password of an HTTP Basic header, as candidates. Device logins are MAC addresses, full of colons, so
 * the split at the last colon comes first (passwords Backhaul issues have none); the RFC's split at the first colon
 * second, for a colon-free login with a password from the config file.
 */
function basicCredentials(header: string | undefined): Array<{ username: string; password: string }> {
  const m = /^Basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(header ?? '');
  if (!m) return [];
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const splits = [...new Set([decoded.lastIndexOf(':'), decoded.indexOf(':')])].filter((i) => i > 0);
  return splits.map((i) => ({ username: decoded.slice(0, i), password: decoded.slice(i + 1) }));
}

/** The device may use its login: enabled and not BLOCKED. */
function refusal(d: Device): string | undefined {
  if (!d.enabled) return 'device is disabled';
  if (d.state === 'BLOCKED') return 'device is blocked';
  return undefined;
}

function placed(o: BootstrapOptions, d: Device): DeviceTopics {
  const topics = o.scheme.topics(d);
  if (topics === undefined) {
    throw new ApiError('BH_BOOTSTRAP_UNPLACED', 'device has no location with a building and room yet, so no topics; ask an operator to place it');
  }
  return topics;
}

/** The host name the device used to reach us, without port or IPv6 brackets. */
function requestHost(req: FastifyRequest): string {
  const h = req.hostname || req.socket.localAddress || '127.0.0.1';
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}

export function bootstrapRoutes(o: BootstrapOptions): ApiPlugin {
  const limiter = new RateLimiter(o.clock, o.rateLimit ?? DEFAULT_API_RATE_LIMITS.bootstrap);
  // One alarm per device per 10 minutes at most: whoever knows a claimed MAC could otherwise flood the event sinks.
  const alarms = new LogThrottle(o.clock, 10 * 60_000);
  /** A hash nothing matches, verified against when a code comes for a device without one, so both take as long. */
  let dummyHash: Promise<string> | undefined;
  const dummy = (): Promise<string> => (dummyHash ??= hashPassword(generatePassword()));

  /** The caller got nothing: count it, back its address off, and throw the one refusal. */
  const refuse = (req: FastifyRequest, reason: RefusalReason, device: string | undefined): never => {
    o.metrics?.bootstrapRefused.inc({ reason });
    limiter.failure(req.ip);
    req.log.debug({ reason, device, address: req.ip }, 'bootstrap credentials refused');
    throw refused();
  };

  const claimedTwice = async (req: FastifyRequest, d: Device): Promise<void> => {
    const suppressed = alarms.take(d.id);
    if (suppressed === null) return;
    const now = o.clock.now();
    const { claimedAt, claimedBy } = d.claim ?? {};
    const taken = claimedAt !== undefined ? new Date(claimedAt).toISOString() : 'earlier';
    const message = `device ${d.id} asked for its first password, which a bootstrap call from ${claimedBy ?? 'an unknown address'} took at ${taken}; reset its credentials and find out who has them`;
    req.log.warn({ device: d.id, address: req.ip, claimedBy, claimedAt, earlierSuppressed: suppressed }, message);
    await o.store.appendAudit({
      actor: `device:${d.id}`,
      action: 'credentials.claimed_twice',
      device: d.id,
      result: 'refused',
      detail: { address: req.ip, ...(claimedBy !== undefined ? { claimedBy } : {}), ...(claimedAt !== undefined ? { claimedAt } : {}) },
      at: now,
    });
    o.raise?.(
      makeEvent(
        CLAIMED_TWICE,
        { address: req.ip, ...(claimedBy !== undefined ? { claimedBy } : {}), ...(claimedAt !== undefined ? { claimedAt } : {}) },
        { ts: now, device: d.id, message },
      ),
    );
  };

  return (app) => {
    app.get<{ Querystring: Static<typeof CredentialsQuery>; Headers: Static<typeof CredentialsHeaders> }>(
      `${BOOTSTRAP_PREFIX}/credentials`,
      {
        config: { public: true },
        schema: {
          operationId: 'bootstrapCredentials',
          summary: 'A device fetches its MQTT login by MAC address, once, while its claim window is open',
          tags: ['bootstrap'],
          querystring: CredentialsQuery,
          headers: CredentialsHeaders,
          response: { 200: CredentialsAnswer, ...errorResponses },
        },
      },
      async (req, reply): Promise<CredentialsAnswer> => {
        void reply.header('cache-control', 'no-store');
        enforce(limiter.attempt(req.ip), 'bootstrap', o.metrics);
        let id: string;
        try {
          id = normaliseId('mac', req.query.mac, 'querystring.mac');
        } catch (e) {
          limiter.failure(req.ip);
          throw e;
        }
        const code = req.query.code ?? req.headers['x-claim-code'];
        const d = await o.store.get(id);
        const now = o.clock.now();
        // The code is checked whenever one is given (against a dummy when the device has none, or is unknown), so
        // the time taken tells nothing either.
        const codeHash = d?.claim?.codeHash;
        let codeOk = codeHash === undefined;
        if (code !== undefined) {
          const matched = await verifyPassword(code.trim(), codeHash ?? (await dummy()));
          codeOk = codeHash === undefined || matched;
        }
        if (!d) return refuse(req, 'unknown', undefined);
        if (refusal(d) !== undefined) return refuse(req, 'disabled', d.id);
        // Config devices get their login from the config file.
        if (d.source === 'config') return refuse(req, 'config', d.id);
        if (d.credentials?.passwordIssued === true) {
          if (codeOk && d.claim?.claimedAt !== undefined) await claimedTwice(req, d);
          return refuse(req, 'claimed', d.id);
        }
        const until = d.claim?.until;
        if (until === undefined) return refuse(req, 'no_window', d.id);
        if (until <= now) return refuse(req, 'expired', d.id);
        if (!codeOk) {
          // Someone tried to claim it during its window without the label's code: the operator should know.
          await o.store.appendAudit({
            actor: `device:${d.id}`,
            action: 'credentials.refused',
            device: d.id,
            result: 'refused',
            detail: { via: 'bootstrap', address: req.ip, reason: code === undefined ? 'no claim code' : 'wrong claim code' },
            at: now,
          });
          return refuse(req, 'code', d.id);
        }
        // Past every check: the caller is the device as far as we can tell, so the remaining answers may be specific.
        const topics = placed(o, d);
        // Checked before a password is issued: one the device cannot use would be lost.
        const b = o.broker();
        if (!b) throw new ApiError('BH_BOOTSTRAP_NO_BROKER', 'no MQTT broker is available to devices now; retry later', { headers: { 'retry-after': '30' } });
        const broker = {
          host: b.host ?? requestHost(req),
          port: b.port,
          ...(b.tls === true ? { tls: true } : {}),
          ...(b.tlsPort !== undefined ? { tlsPort: b.tlsPort } : {}),
        };

        const login = d.credentials?.username ?? d.id;
        const password = generatePassword();
        const hash = o.store.logins.hash(password); // the fast format: it is a generated password (credentials.ts)
        if (o.passwordIssued) {
          await o.passwordIssued({ ...d, credentials: { username: login, hash, passwordIssued: true, updatedAt: now } }, password, hash).catch((e: unknown) => {
            throw new ApiError('BH_BOOTSTRAP_NO_BROKER', `the MQTT broker did not take the new password; retry later (${errorText(e)})`, { headers: { 'retry-after': '30' } });
          });
        }
        if (!(await o.store.claimCredentials(d.id, { username: login, hash }, req.ip, now))) {
          // Another call claimed it in the meantime (or the window just closed).
          const after = await o.store.get(d.id);
          if (after?.credentials?.passwordIssued === true && after.claim?.claimedAt !== undefined) {
            await claimedTwice(req, after);
            return refuse(req, 'claimed', d.id);
          }
          return refuse(req, 'expired', d.id);
        }
        limiter.success(req.ip);
        await o.store.appendAudit({
          actor: `device:${d.id}`,
          action: 'credentials.issue',
          device: d.id,
          result: 'ok',
          detail: { via: 'bootstrap', address: req.ip },
          at: now,
        });
        return { device: d.id, login, password, broker, baseTopic: topics.base, topics: { status: topics.status, command: topics.command } };
      },
    );

    app.get(
      `${BOOTSTRAP_PREFIX}/config`,
      {
        config: { public: true },
        schema: {
          operationId: 'bootstrapConfig',
          summary: 'A device fetches its config, logged in with HTTP Basic',
          tags: ['bootstrap'],
          headers: ConfigHeaders,
          response: { 200: ConfigAnswer, ...errorResponses },
        },
      },
      async (req, reply): Promise<ConfigAnswer> => {
        void reply.header('cache-control', 'no-store');
        enforce(limiter.attempt(req.ip), 'bootstrap', o.metrics);
        let d: Device | undefined;
        let password = '';
        for (const c of basicCredentials(req.headers.authorization)) {
          d = await o.store.getByUsername(c.username);
          password = c.password;
          if (d) break;
        }
        const hash = d?.credentials?.hash;
        if (!d || refusal(d) !== undefined || !hash || !(await o.store.logins.verify(password, hash))) {
          limiter.failure(req.ip);
          throw unauthorized();
        }
        limiter.success(req.ip);
        try {
          o.onLogin?.(d);
        } catch (err) {
          req.log.warn({ err }, 'bootstrap onLogin hook failed');
        }
        const topics = placed(o, d);
        return { device: d.id, type: d.type, config: d.config, baseTopic: topics.base, topics: { status: topics.status, command: topics.command } };
      },
    );
  };
}
