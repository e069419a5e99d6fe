// Embedded MQTT broker (aedes 1.x) on a plain TCP listener. Every PUBLISH whose topic matches `topics` and none of
// `exclude` becomes a frame; the frame is handed to the hub inside aedes's `authorizePublish` hook, which runs before
// aedes writes the PUBACK of a QoS 1 publish (lib/handlers/publish.js: authorizePublish, then enqueuePublish writes
// the PUBACK). So a device's QoS 1 publish is acknowledged only once its readings are durably queued. After the hook
// the message is delivered to the broker's own subscribers as usual.
//
// Access control: anonymous clients are refused unless `anonymous` is on. A login is either one of `users`
// (Backhaul's own clients and other services, each with topic filters for what it may publish and subscribe to) or a
// device from the registry, which may publish only under its own base topic and subscribe only to its command topic
// (devices/topics.ts). A publish outside what the login may do closes its connection (MQTT 3.1.1 has no way to refuse
// one publish); a refused subscription gets return code 0x80.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { Type } from '@sinclair/typebox';
import { Aedes, type Client } from 'aedes';
import { defineInput, type Input, type Principal } from '../../core/driver.js';
import { BackhaulError } from '../../core/errors.js';
import { LogThrottle } from '../../core/throttle.js';
import type { Frame, TransportIdentity } from '../../core/types.js';
import { anyTopicMatches, topicFilterError, topicMatches, topicProblems } from '../topic.js';
import { bytes, errorMessage, InFlight, listenError, reachableHost } from '../util.js';

const options = Type.Object(
  {
    host: Type.String({ description: 'Address to listen on; `0.0.0.0` for every IPv4 interface, `127.0.0.1` for this machine only.', default: '0.0.0.0' }),
    port: Type.Integer({ description: 'TCP port for MQTT; 0 picks any free port (see the logged url).', minimum: 0, maximum: 65535, default: 1883 }),
    topics: Type.Array(Type.String({ minLength: 1 }), {
      description: 'Topic filters (MQTT wildcards `+` and `#`) whose publishes are ingested.',
      default: ['#'],
    }),
    exclude: Type.Array(Type.String({ minLength: 1 }), {
      description: 'Topic filters never ingested, even when `topics` matches (Backhaul\'s own MQTT sink publishes under `backhaul/`). `$SYS/#` is never ingested.',
      default: ['backhaul/#'],
    }),
    anonymous: Type.Optional(Type.Boolean({
      description: 'Let clients connect without a login, and publish and subscribe anywhere. Off by default: only `users` and registered devices with their own credentials connect.',
      default: false,
    })),
    users: Type.Optional(Type.Array(
      Type.Object(
        {
          username: Type.String({ minLength: 1, description: 'Login of a service account (Backhaul\'s own MQTT sink, a dashboard, a bridge).' }),
          password: Type.String({ minLength: 1, secret: true, description: 'Its password; use `{"secret": NAME}`.' }),
          publish: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'Topic filters it may publish to.', default: ['#'] })),
          subscribe: Type.Optional(
            Type.Array(Type.String({ minLength: 1 }), { description: 'Topic filters it may subscribe to (a subscription must lie inside one).', default: ['#'] }),
          ),
        },
        { additionalProperties: false },
      ),
      { description: 'Service accounts. Devices log in with the credentials the registry gives them, not here.', default: [] },
    )),
    advertise: Type.Optional(
      Type.String({ minLength: 1, description: 'Host name devices should use for this broker, told them by the bootstrap call; default: the host they reached the bootstrap API by.' }),
    ),
  },
  { additionalProperties: false },
);

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/**
 * May a subscription `filter` be granted to someone allowed `allowed`? Only when every topic it can match is one the
 * allowed filter matches: equal, or narrower level by level (`+` inside `+` or `#`, `#` only inside `#`).
 */
export function filterWithin(filter: string, allowed: string): boolean {
  const f = filter.split('/');
  const a = allowed.split('/');
  for (let i = 0; i < f.length; i++) {
    const al = a[i];
    if (al === '#') return !f[0]?.startsWith('$') || a[0]?.startsWith('$') === true;
    if (al === undefined) return false;
    const fl = f[i]!;
    if (fl === '#') return false;
    if (al === '+') {
      if (i === 0 && fl.startsWith('$')) return false;
      continue;
    }
    if (fl === '+' || fl !== al) return false;
  }
  // `sport/#` also matches `sport` itself.
  return f.length === a.length || (a.length === f.length + 1 && a[f.length] === '#');
}

interface ServiceUser {
  readonly username: string;
  readonly password: Buffer;
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
}

function servicePrincipal(u: ServiceUser): Principal {
  return {
    username: u.username,
    mayPublish: (topic) => u.publish.some((f) => topicMatches(f, topic)),
    maySubscribe: (filter) => u.subscribe.some((a) => filterWithin(filter, a)),
  };
}

/** Anonymous clients, when allowed, may do anything but publish to `$SYS`. */
const ANYONE: Omit<Principal, 'username'> = { mayPublish: () => true, maySubscribe: () => true };

export const brokerInput = defineInput({
  kind: 'input',
  type: 'broker',
  description: 'Embedded MQTT broker (QoS 0 and 1): devices publish to it; matching publishes become frames.',
  options,
  defaultDecoder: 'json',
  check(opts) {
    const problems = [...topicProblems(opts.topics ?? [], 'topics'), ...topicProblems(opts.exclude ?? [], 'exclude')];
    const seen = new Set<string>();
    (opts.users ?? []).forEach((u, i) => {
      problems.push(...topicProblems(u.publish ?? [], `users[${i}].publish`), ...topicProblems(u.subscribe ?? [], `users[${i}].subscribe`));
      if (seen.has(u.username)) problems.push({ path: `users[${i}].username`, message: `the username ${JSON.stringify(u.username)} is given twice` });
      seen.add(u.username);
    });
    return problems;
  },
  create(opts, ctx): Input {
    const host = opts.host ?? '0.0.0.0';
    const port = opts.port ?? 1883;
    const topics = opts.topics ?? ['#'];
    const exclude = opts.exclude ?? ['backhaul/#'];
    const log = ctx.logger;
    const throttle = new LogThrottle(ctx.clock);
    const inflight = new InFlight();
    const anonymous = opts.anonymous ?? false;
    const users = new Map<string, ServiceUser>(
      (opts.users ?? []).map((u) => [
        u.username,
        { username: u.username, password: digest(u.password), publish: u.publish ?? ['#'], subscribe: u.subscribe ?? ['#'] },
      ]),
    );
    // What each connected client may do; a client without an entry is anonymous (only when `anonymous` is on).
    const principals = new WeakMap<Client, Principal>();
    const byUsername = new Map<string, Set<Client>>();
    const counted = new WeakSet<Error>(); // data-path failures already counted, so aedes's clientError does not recount
    const sockets = new Set<Socket>();
    let broker: Aedes | undefined;
    let server: Server | undefined;
    let boundPort = port;
    let accepting = false;

    const countError = (key: string, msg: string, err: unknown) => {
      ctx.metrics.inputErrors.inc({ input: ctx.id });
      const suppressed = throttle.take(key);
      if (suppressed !== null) {
        log.warn({ err: errorMessage(err), ...(suppressed > 0 ? { suppressed } : {}) }, msg);
      }
    };

    const identityOf = (client: Client | null): TransportIdentity | undefined => {
      if (!client) return undefined;
      const conn = client.conn as Partial<Socket>;
      const username = principals.get(client)?.username;
      return {
        ...(username !== undefined ? { username } : {}),
        ...(client.id ? { clientId: client.id } : {}),
        ...(typeof conn.remoteAddress === 'string' ? { remoteAddress: conn.remoteAddress } : {}),
      };
    };

    const ingest = async (client: Client | null, topic: string, payload: Buffer | string, qos: number): Promise<void> => {
      if (qos === 0) ctx.metrics.framesUnacknowledged.inc({ input: ctx.id });
      const identity = identityOf(client);
      const frame: Frame = {
        input: ctx.id,
        payload: typeof payload === 'string' ? new TextEncoder().encode(payload) : bytes(payload),
        receivedAt: ctx.clock.now(),
        topic,
        ...(identity ? { identity } : {}),
      };
      try {
        await inflight.track(ctx.emit(frame));
      } catch (err) {
        countError('emit', 'could not hand a publish to the data path; QoS 1 publishes are not acknowledged', err);
        if (qos > 0) {
          const e = err instanceof Error ? err : new Error(String(err));
          counted.add(e);
          throw e; // aedes drops the client without a PUBACK; the device republishes after reconnecting
        }
      }
    };

    return {
      async start() {
        for (const f of [...topics, ...exclude]) {
          const why = topicFilterError(f);
          if (why) throw new BackhaulError('BH_CONFIG_SCHEMA', `${why}: ${JSON.stringify(f)}`, { path: `inputs.${ctx.id}.topics` });
        }
        const b = await Aedes.createBroker({
          // Anonymous clients are allowed for now; the username is kept for the frame's identity.
          // A client that gives a username must prove it (its password is checked against the device registry);
          // only then does the username travel with its frames. Anonymous clients are still allowed for now.
          authenticate: (client, username, password, done) => {
            const refuse = (why: string) => {
              countError('auth', 'MQTT login refused (anonymous, unknown user, wrong password, or device disabled)', new Error(why));
              done(Object.assign(new Error('bad username or password'), { returnCode: anonymous || username ? 4 : 5 }), false);
            };
            if (username === undefined || username === '') {
              if (anonymous) done(null, true);
              else refuse('anonymous client, and anonymous access is off');
              return;
            }
            const given = password ? Buffer.from(password).toString('utf8') : '';
            const admit = (p: Principal) => {
              principals.set(client, p);
              let set = byUsername.get(p.username);
              if (!set) byUsername.set(p.username, (set = new Set()));
              set.add(client);
              done(null, true);
            };
            const service = users.get(username);
            if (service) {
              if (timingSafeEqual(digest(given), service.password)) admit(servicePrincipal(service));
              else refuse(`service user ${username}: wrong password`);
              return;
            }
            ctx.authenticate(username, given).then(
              (p) => (p ? admit(p) : refuse(`user ${username}`)),
              (err: unknown) => done(Object.assign(err instanceof Error ? err : new Error(String(err)), { returnCode: 3 }), false),
            );
          },
          authorizeSubscribe: (client, sub, callback) => {
            const p = client ? (principals.get(client) ?? (anonymous ? ANYONE : undefined)) : undefined;
            if (p?.maySubscribe(sub.topic)) {
              callback(null, sub);
              return;
            }
            countError('acl-sub', 'MQTT subscription refused by the topic ACL', new Error(`${client?.id ?? '?'} → ${sub.topic}`));
            callback(null, null); // SUBACK 0x80 for this filter; the client stays connected
          },
          authorizePublish: (client, packet, callback) => {
            const topic = packet.topic;
            if (topic.startsWith('$SYS/')) {
              callback(new Error('$SYS topics are reserved'));
              return;
            }
            const p = client ? (principals.get(client) ?? (anonymous ? ANYONE : undefined)) : ANYONE;
            if (!p?.mayPublish(topic)) {
              const e = new Error(`not authorized to publish on ${topic}`);
              countError('acl-pub', 'MQTT publish refused by the topic ACL; connection closed', new Error(`${client?.id ?? '?'} → ${topic}`));
              counted.add(e);
              callback(e);
              return;
            }
            if (!anyTopicMatches(topics, topic) || anyTopicMatches(exclude, topic)) {
              callback(null);
              return;
            }
            if (!accepting) {
              // Stopping: a QoS 1 publish must not be acknowledged when it will not be ingested; the device resends.
              callback(packet.qos > 0 ? new Error('Backhaul is stopping') : null);
              return;
            }
            ingest(client, topic, packet.payload, packet.qos).then(
              () => callback(null),
              (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
            );
          },
        });
        b.on('clientError', (client, err) => {
          if (counted.has(err)) return;
          countError(`client:${err.message}`, `MQTT client ${client.id} failed`, err);
        });
        b.on('connectionError', (_client, err) => {
          countError(`conn:${err.message}`, 'MQTT connection failed before CONNECT completed', err);
        });
        b.on('client', (client) => log.debug({ clientId: client.id }, 'MQTT client connected'));
        b.on('clientDisconnect', (client) => log.debug({ clientId: client.id }, 'MQTT client disconnected'));
        const forget = (client: Client) => {
          const p = principals.get(client);
          if (!p) return;
          const set = byUsername.get(p.username);
          set?.delete(client);
          if (set?.size === 0) byUsername.delete(p.username);
        };
        b.on('clientDisconnect', forget);
        b.on('clientError', forget);

        const srv = createServer((socket) => {
          sockets.add(socket);
          socket.once('close', () => sockets.delete(socket));
          b.handle(socket);
        });
        try {
          await new Promise<void>((resolve, reject) => {
            srv.once('error', reject);
            srv.listen({ host, port }, () => {
              srv.off('error', reject);
              resolve();
            });
          });
        } catch (err) {
          await new Promise<void>((r) => b.close(() => r()));
          throw listenError(err, host, port, ctx.id);
        }
        srv.on('error', (err) => countError('server', 'MQTT listener error', err));
        const addr = srv.address();
        boundPort = typeof addr === 'object' && addr ? addr.port : port;
        broker = b;
        server = srv;
        accepting = true;
        log.info({ url: `mqtt://${reachableHost(host)}:${boundPort}` }, 'embedded MQTT broker listening');
      },

      async stop() {
        accepting = false;
        const srv = server;
        const b = broker;
        server = undefined;
        broker = undefined;
        const closed = srv ? new Promise<void>((r) => srv.close(() => r())) : Promise.resolve();
        await inflight.settle(); // let publishes already being ingested be acknowledged
        if (b) await new Promise<void>((r) => b.close(() => r()));
        for (const s of sockets) s.destroy();
        sockets.clear();
        await closed;
      },

      info() {
        return { url: `mqtt://${reachableHost(host)}:${boundPort}` };
      },

      broker: {
        publish(topic, payload, o) {
          const b = broker;
          if (!b) return Promise.reject(new Error('the embedded broker is not running'));
          return new Promise<void>((resolve, reject) => {
            b.publish({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: o.qos, retain: o.retain ?? false, dup: false }, (err) =>
              err ? reject(err) : resolve(),
            );
          });
        },
        disconnect(username) {
          const set = byUsername.get(username);
          if (!set) return 0;
          byUsername.delete(username);
          for (const c of set) c.close();
          return set.size;
        },
        address() {
          return { ...(opts.advertise !== undefined ? { host: opts.advertise } : {}), port: boundPort };
        },
      },
    };
  },
});
