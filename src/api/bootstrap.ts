// Device bootstrap over HTTP. A device knows only its MAC address: it asks for its MQTT login (`/credentials`), then,
// logged in with it (HTTP Basic), for its config (`/config`). The password is handed out once: the first call after it
// was created or reset (`passwordIssued` false) makes one, stores its hash and returns it; later calls return
// everything but the password. `setCredentials(…, { onlyIfPending })` is the atomic claim, so of two concurrent first
// calls only one gets a password.
//
// No API tokens here: devices have none, and these routes are registered as their own plugin so the REST API's token
// hook (its own plugin context) never applies to them. What protects the password is that it is delivered once: an
// operator who sees a device get `no password` it did not expect resets its credentials.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import type { Clock } from '../core/clock.js';
import { generatePassword } from '../devices/credentials.js';
import type { DeviceStore } from '../devices/registry.js';
import type { DeviceTopics, TopicScheme } from '../devices/topics.js';
import { normaliseId, type Device } from '../devices/types.js';
import { ApiError, errorResponses, type ApiPlugin } from './server.js';

export interface BootstrapOptions {
  readonly store: DeviceStore;
  readonly scheme: TopicScheme;
  readonly clock: Clock;
  /**
   * Where devices reach the MQTT broker; an undefined host is taken from the request (its Host header's hostname).
   * Undefined: no broker devices can use, answered 503.
   */
  readonly broker: () => { host?: string; port: number } | undefined;
  /** Called after a device's login is verified (`/config`), to count it in metrics and the like. */
  readonly onLogin?: (device: Device) => void;
}

export const BOOTSTRAP_PREFIX = '/bootstrap/v1';

const Topics = Type.Object({ status: Type.String(), command: Type.String() });

export const CredentialsQuery = Type.Object({
  mac: Type.String({ minLength: 1, maxLength: 64, description: 'The device MAC address, in any common form.' }),
});

export const CredentialsAnswer = Type.Object({
  device: Type.String({ description: 'Canonical device id.' }),
  login: Type.String({ description: 'MQTT username.' }),
  password: Type.Optional(Type.String({ description: 'Present only on the call that issued it.' })),
  broker: Type.Object({ host: Type.String(), port: Type.Integer() }),
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
  return new ApiError(401, 'BH_BOOTSTRAP_AUTH', 'HTTP Basic login with the device login and password required', { headers: AUTH_HEADERS });
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
    throw new ApiError(409, 'BH_BOOTSTRAP_UNPLACED', 'device has no location with a building and room yet, so no topics; ask an operator to place it');
  }
  return topics;
}

/** The host name the device used to reach us, without port or IPv6 brackets. */
function requestHost(req: FastifyRequest): string {
  const h = req.hostname || req.socket.localAddress || '127.0.0.1';
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}

export function bootstrapRoutes(o: BootstrapOptions): ApiPlugin {
  return (app) => {
    app.get<{ Querystring: Static<typeof CredentialsQuery> }>(
      `${BOOTSTRAP_PREFIX}/credentials`,
      { schema: { querystring: CredentialsQuery, response: { 200: CredentialsAnswer, ...errorResponses } } },
      async (req, reply): Promise<CredentialsAnswer> => {
        void reply.header('cache-control', 'no-store');
        const id = normaliseId('mac', req.query.mac, 'querystring.mac');
        const d = await o.store.get(id);
        if (!d) throw new ApiError(404, 'BH_DEVICE_NOT_FOUND', 'no device with this MAC address is registered', { path: 'querystring.mac' });
        const why = refusal(d);
        if (why !== undefined) throw new ApiError(403, 'BH_BOOTSTRAP_REFUSED', why);
        const topics = placed(o, d);
        const pending = d.credentials?.passwordIssued !== true;
        // Config devices get their login from the config file; the store refuses to set one here.
        if (pending && d.source === 'config') throw new ApiError(403, 'BH_BOOTSTRAP_REFUSED', 'device is declared in the config file without a login');
        // Checked before a password is issued: one the device cannot use would be lost.
        const b = o.broker();
        if (!b) throw new ApiError(503, 'BH_BOOTSTRAP_NO_BROKER', 'no MQTT broker is available to devices now; retry later', { headers: { 'retry-after': '30' } });
        const broker = { host: b.host ?? requestHost(req), port: b.port };

        let login = d.credentials?.username ?? d.id;
        let password: string | undefined;
        if (pending) {
          const fresh = generatePassword();
          const hash = o.store.logins.hash(fresh); // the fast format: it is a generated password (credentials.ts)
          if (await o.store.setCredentials(d.id, { username: login, hash, passwordIssued: true }, { onlyIfPending: true })) {
            password = fresh;
            await o.store.appendAudit({
              actor: `device:${d.id}`,
              action: 'credentials.issue',
              device: d.id,
              result: 'ok',
              detail: { via: 'bootstrap' },
              at: o.clock.now(),
            });
          } else {
            // Another call issued it first; report the login as that call stored it.
            login = (await o.store.get(d.id))?.credentials?.username ?? login;
          }
        }
        return { device: d.id, login, ...(password !== undefined ? { password } : {}), broker, baseTopic: topics.base, topics: { status: topics.status, command: topics.command } };
      },
    );

    app.get(
      `${BOOTSTRAP_PREFIX}/config`,
      { schema: { headers: ConfigHeaders, response: { 200: ConfigAnswer, ...errorResponses } } },
      async (req, reply): Promise<ConfigAnswer> => {
        void reply.header('cache-control', 'no-store');
        let d: Device | undefined;
        let password = '';
        for (const c of basicCredentials(req.headers.authorization)) {
          d = await o.store.getByUsername(c.username);
          password = c.password;
          if (d) break;
        }
        const hash = d?.credentials?.hash;
        if (!d || refusal(d) !== undefined || !hash || !(await o.store.logins.verify(password, hash))) throw unauthorized();
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
