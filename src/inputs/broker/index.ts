// Embedded MQTT broker (aedes 1.x: MQTT 3.1.1 and 3.1, not 5) on a plain TCP listener. Every PUBLISH whose topic
// matches `topics` and none of `exclude` becomes a frame; the frame is handed to the hub inside aedes's
// `authorizePublish` hook, which runs before aedes writes the PUBACK of a QoS 1 publish or the PUBREC of a QoS 2 one
// (lib/handlers/publish.js: authorizePublish, then enqueuePublish acknowledges). So a device's publish is acknowledged
// only once its readings are durably queued. After the hook the message is delivered to the broker's own subscribers.
// QoS 2 is ingested once per packet id until PUBREL (sessions.ts: QoS2Receipts).
//
// Access control: anonymous clients are refused unless `anonymous` is on. A login is either one of `users`
// (Backhaul's own clients and other services, each with topic filters for what it may publish and subscribe to) or a
// device from the registry, which may publish only under its own base topic and subscribe only to its command topic
// (devices/topics.ts). A publish outside what the login may do closes its connection (MQTT 3.1.1 has no way to refuse
// one publish); a refused subscription gets return code 0x80. A client id belongs to the login that first used it
// (sessions.ts: ClientIds), and logins are rate limited per client address (core/ratelimit.ts).
//
// Before aedes parses anything, each socket's bytes pass a check of every packet's fixed header (guard.ts), and
// connections are capped per address and in total, with a connect timeout: so no client can make the process keep
// more than a small packet before it has logged in.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { Type } from '@sinclair/typebox';
import { Aedes, type Client, type PublishPacket } from 'aedes';
import type { ClockTimer } from '../../core/clock.js';
import { defineInput, type Input, type Principal } from '../../core/driver.js';
import { BackhaulError } from '../../core/errors.js';
import { RateLimiter } from '../../core/ratelimit.js';
import { LogThrottle } from '../../core/throttle.js';
import type { Frame, TransportIdentity } from '../../core/types.js';
import { anyTopicMatches, topicFilterError, topicMatches, topicProblems } from '../../core/topic.js';
import { listenError, reachableHost } from '../../core/listen.js';
import { InFlight } from '../../core/inflight.js';
import { bytes, errorMessage } from '../util.js';
import { guardSocket, PacketGuard, type GuardRefusal } from './guard.js';
import { ClientIds, ownerKey, QoS2Receipts, watchQoS2Store } from './sessions.js';

/** Labels of `backhaul_broker_refused_total{reason}`. */
export type RefusalReason =
  | 'connect_too_large'
  | 'packet_too_large'
  | 'malformed_length'
  | 'max_connections'
  | 'max_connections_per_address'
  | 'connect_timeout'
  | 'client_id_empty'
  | 'client_id_taken'
  | 'login_rate'
  | 'login_backoff'
  | 'bad_login'
  | 'not_authorized'
  | 'qos2_inflight';

/** QoS 2 publishes one session may have awaiting PUBREL (aedes's own default bound, kept in step with ours). */
const QOS2_INFLIGHT = 1000;


/** Defaults of the limits below, documented in the README and docs/config.md. */
const DEFAULTS = {
  maxPacketBytes: 1048576,
  maxConnectBytes: 4096,
  connectTimeoutMs: 10000,
  maxConnections: 10000,
  maxConnectionsPerAddress: 100,
  loginLimit: { burst: 20, perSecond: 5, failuresBeforeBackoff: 5, backoffMs: 1000, maxBackoffMs: 300000 },
} as const;

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
    maxPacketBytes: Type.Optional(Type.Integer({
      description: 'Largest MQTT packet (fixed header included) a logged-in client may send; a larger one closes its connection as soon as its header arrives.',
      minimum: 1024,
      maximum: 268435460,
      default: DEFAULTS.maxPacketBytes,
    })),
    maxConnectBytes: Type.Optional(Type.Integer({
      description: 'Largest packet before the broker accepted the client\'s login (its CONNECT, and anything sent before the CONNACK).',
      minimum: 256,
      maximum: 65536,
      default: DEFAULTS.maxConnectBytes,
    })),
    connectTimeoutMs: Type.Optional(Type.Integer({
      description: 'A connection whose login is not accepted within this time (no CONNECT, or a CONNECT sent too slowly) is closed.',
      minimum: 100,
      default: DEFAULTS.connectTimeoutMs,
    })),
    maxConnections: Type.Optional(Type.Integer({
      description: 'Open connections at most; further ones are closed at once and counted.',
      minimum: 1,
      default: DEFAULTS.maxConnections,
    })),
    maxConnectionsPerAddress: Type.Optional(Type.Integer({
      description: 'Open connections at most from one client address (raise it for many devices behind one NAT).',
      minimum: 1,
      default: DEFAULTS.maxConnectionsPerAddress,
    })),
    loginLimit: Type.Optional(Type.Object(
      {
        burst: Type.Optional(Type.Integer({ minimum: 1, description: 'Logins one address may try at once.', default: DEFAULTS.loginLimit.burst })),
        perSecond: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: 'Logins regained per second.', default: DEFAULTS.loginLimit.perSecond })),
        failuresBeforeBackoff: Type.Optional(Type.Integer({
          minimum: 1,
          description: 'Failed logins in a row from one address before it is backed off.',
          default: DEFAULTS.loginLimit.failuresBeforeBackoff,
        })),
        backoffMs: Type.Optional(Type.Integer({ minimum: 0, description: 'First backoff, doubled at each further failure.', default: DEFAULTS.loginLimit.backoffMs })),
        maxBackoffMs: Type.Optional(Type.Integer({ minimum: 0, description: 'Longest backoff.', default: DEFAULTS.loginLimit.maxBackoffMs })),
      },
      {
        additionalProperties: false,
        description:
          'Rate limit on logins (devices and service accounts) per client address: a token bucket for attempts, and an exponential backoff after failures. Keyed by address, never by username, so failing logins for a device\'s name does not lock the device out. Refused with CONNACK 3.',
        default: DEFAULTS.loginLimit,
      },
    )),
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
  /** What it may do: one object for all its connections. */
  readonly principal: Principal;
}

function servicePrincipal(username: string, publish: readonly string[], subscribe: readonly string[]): Principal {
  return {
    username,
    mayPublish: (topic) => publish.some((f) => topicMatches(f, topic)),
    maySubscribe: (filter) => subscribe.some((a) => filterWithin(filter, a)),
  };
}

/**
 * What the broker keeps for one open socket besides aedes's own client: one object, and no closure of its own once
 * the login is accepted (10,000 idle devices are 10,000 of these).
 */
interface Conn {
  readonly address: string;
  readonly guard: PacketGuard;
  /** The connect timer, until the login is accepted (then cleared and dropped). */
  timer: ClockTimer | undefined;
  /** The client whose login was accepted on this socket, and the ClientIds its id was claimed in. */
  client: Client | undefined;
  ids: ClientIds | undefined;
}

/** The parts of aedes's per-client mqtt-packet parser that slimParser and dropConnectPacket touch. */
interface ClientParser {
  _list?: unknown;
  settings?: unknown;
}

function parserOf(client: Client): ClientParser | undefined {
  const p = (client as unknown as { _parser?: unknown })._parser;
  return typeof p === 'object' && p !== null ? p : undefined;
}

interface ByteList {
  readonly length: number;
  append(buf: Uint8Array): unknown;
  consume(n: number): unknown;
  slice(start?: number, end?: number): Uint8Array;
  readUInt8(offset: number): number;
}

/**
 * aedes gives every client an mqtt-packet parser whose byte list is a `bl` BufferListStream: a whole Duplex stream
 * (two stream states, an event emitter: ~1 KB a connection, for its life) on which the parser only ever calls
 * BufferList methods (append, consume, slice, readUInt8/16/32, toString, length). bl's BufferListStream is those very
 * methods copied onto a stream, so its plain BufferList (exported beside it) parses the same. Swapped before the
 * socket is read, when the list is empty; anything else (another aedes or mqtt-packet) is left as it is.
 */
function slimParser(client: Client): void {
  const parser = parserOf(client);
  const list = parser?._list as (Partial<ByteList> & { pipe?: unknown; constructor?: unknown }) | undefined;
  if (!parser || !list || list.length !== 0 || typeof list.pipe !== 'function') return;
  const Plain = (list.constructor as { BufferList?: unknown } | undefined)?.BufferList;
  if (typeof Plain !== 'function') return;
  const replacement = new (Plain as new () => Partial<ByteList>)();
  const methods = ['append', 'consume', 'slice', 'readUInt8', 'readUInt16BE', 'readUInt32BE', 'toString'] as const;
  if (replacement.length !== 0 || !methods.every((m) => typeof (replacement as Record<string, unknown>)[m] === 'function')) return;
  parser._list = replacement;
}

/** What the parser needs of the CONNECT once the login is accepted: its protocol level (one object for all). */
const PARSER_SETTINGS: Readonly<Record<number, object>> = { 3: Object.freeze({ protocolVersion: 3 }), 4: Object.freeze({ protocolVersion: 4 }) };

/**
 * mqtt-packet keeps the CONNECT packet (client id, username, the password's buffer) as its parser's settings for
 * the connection's life, only to read its protocol level from it: after CONNACK 0 it gets a shared object with just
 * that level.
 */
function dropConnectPacket(client: Client): void {
  const parser = parserOf(client);
  const level = (parser?.settings as { protocolVersion?: unknown } | undefined)?.protocolVersion;
  const settings = typeof level === 'number' ? PARSER_SETTINGS[level] : undefined;
  if (parser && settings) parser.settings = settings;
}

/** Anonymous clients, when allowed, may do anything but publish to `$SYS`. */
const ANYONE: Omit<Principal, 'username'> = { mayPublish: () => true, maySubscribe: () => true };

export const brokerInput = defineInput({
  kind: 'input',
  type: 'broker',
  description: 'Embedded MQTT 3.1.1 broker (QoS 0, 1 and 2; no MQTT 5): devices publish to it; matching publishes become frames.',
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
    const maxPacketBytes = opts.maxPacketBytes ?? DEFAULTS.maxPacketBytes;
    const maxConnectBytes = opts.maxConnectBytes ?? DEFAULTS.maxConnectBytes;
    const connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
    const maxConnections = opts.maxConnections ?? DEFAULTS.maxConnections;
    const maxPerAddress = opts.maxConnectionsPerAddress ?? DEFAULTS.maxConnectionsPerAddress;
    const log = ctx.logger;
    const throttle = new LogThrottle(ctx.clock);
    const inflight = new InFlight();
    const anonymous = opts.anonymous ?? false;
    const users = new Map<string, ServiceUser>(
      (opts.users ?? []).map((u) => [
        u.username,
        { username: u.username, password: digest(u.password), principal: servicePrincipal(u.username, u.publish ?? ['#'], u.subscribe ?? ['#']) },
      ]),
    );
    // What each connected client may do; a client without an entry is anonymous (only when `anonymous` is on). Kept
    // by client, not socket: aedes authorizes a client's will after its socket closed.
    const principals = new WeakMap<Client, Principal>();
    const counted = new WeakSet<Error>(); // data-path failures already counted, so aedes's clientError does not recount
    const conns = new Map<Socket, Conn>();
    const perAddress = new Map<string, number>();
    const emptyPersistentId = new WeakSet<Client>(); // CONNECTs with an empty client id and clean session 0
    // Both follow aedes's in-memory sessions, so they are made anew with each broker (in start()).
    let clientIds = new ClientIds();
    let receipts = new QoS2Receipts(QOS2_INFLIGHT);
    const closings = new WeakMap<Socket, Promise<void>>();
    /** Resolves when `socket` closes (one promise per socket, made only for a session with QoS 2 publishes). */
    const closedOf = (socket: Socket): Promise<void> => {
      let p = closings.get(socket);
      if (!p) {
        p = socket.destroyed ? Promise.resolve() : new Promise<void>((r) => socket.once('close', () => r()));
        closings.set(socket, p);
      }
      return p;
    };
    let logins: RateLimiter | undefined;
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

    /** A refusal of the broker's own limits: counted by reason, logged with its code at most once a minute per reason. */
    const refuse = (reason: RefusalReason, err: BackhaulError, details: Record<string, unknown> = {}) => {
      ctx.metrics.brokerRefused.inc({ input: ctx.id, reason });
      const suppressed = throttle.take(`refused:${reason}`);
      if (suppressed !== null) {
        log.warn({ code: err.code, ...details, ...(suppressed > 0 ? { suppressed } : {}) }, err.message);
      }
    };

    const addressOf = (client: Client | null): string | undefined => {
      const a = (client?.conn as Partial<Socket> | undefined)?.remoteAddress;
      return typeof a === 'string' ? a : undefined;
    };

    // A commit acknowledges many publishes at once; their PUBACKs to one device leave in one write, not one each.
    const corked = new WeakSet<Socket>();
    const corkUntilNextTurn = (client: Client | null): void => {
      const sock = client?.conn as Partial<Socket> | undefined;
      if (!sock || typeof sock.cork !== 'function' || corked.has(sock as Socket)) return;
      corked.add(sock as Socket);
      sock.cork();
      setImmediate(() => {
        corked.delete(sock as Socket);
        sock.uncork?.();
      });
    };

    // Made at a connection's first publish and kept while it lives: its login, id and address do not change, and
    // asking the socket for its peer address is a system call (it showed in the profile of every publish).
    const identities = new WeakMap<Client, TransportIdentity>();
    const identityOf = (client: Client | null): TransportIdentity | undefined => {
      if (!client) return undefined;
      const known = identities.get(client);
      if (known) return known;
      const username = principals.get(client)?.username;
      const remoteAddress = addressOf(client);
      const identity: TransportIdentity = {
        ...(username !== undefined ? { username } : {}),
        ...(client.id ? { clientId: client.id } : {}),
        ...(remoteAddress !== undefined ? { remoteAddress } : {}),
      };
      identities.set(client, identity);
      return identity;
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
        countError('emit', 'could not hand a publish to the data path; QoS 1 and 2 publishes are not acknowledged', err);
        if (qos > 0) {
          const e = err instanceof Error ? err : new Error(String(err));
          counted.add(e);
          throw e; // aedes drops the client without a PUBACK/PUBREC; the device republishes after reconnecting
        }
      }
    };

    /**
     * A QoS 2 publish is ingested once per packet id until aedes completes its handshake (PUBREL): a copy resent
     * (DUP) before then waits for the first one's hand-over and for aedes to have stored it, so aedes finds it in
     * its QoS 2 store and answers PUBREC without publishing it again.
     */
    const ingestOnce = (client: Client, topic: string, packet: PublishPacket): Promise<void> => {
      const messageId = packet.messageId!;
      const earlier = receipts.lookup(client.id, messageId);
      if (earlier === 'full') {
        const e = new BackhaulError('BH_MQTT_INFLIGHT', `client ${client.id} has ${QOS2_INFLIGHT} QoS 2 publishes awaiting PUBREL; connection closed`);
        refuse('qos2_inflight', e, { clientId: client.id, remoteAddress: addressOf(client) });
        counted.add(e);
        return Promise.reject(e);
      }
      if (earlier !== 'new') return earlier;
      const handover = ingest(client, topic, packet.payload, 2);
      receipts.record(client.id, messageId, handover, closedOf(client.conn as Socket));
      return handover;
    };

    return {
      async start() {
        for (const f of [...topics, ...exclude]) {
          const why = topicFilterError(f);
          if (why) throw new BackhaulError('BH_CONFIG_SCHEMA', `${why}: ${JSON.stringify(f)}`, { path: `inputs.${ctx.id}.topics` });
        }
        logins = new RateLimiter(ctx.clock, { ...DEFAULTS.loginLimit, ...opts.loginLimit });
        clientIds = new ClientIds();
        receipts = new QoS2Receipts(QOS2_INFLIGHT);
        const b = await Aedes.createBroker({
          // Ours (below, per socket) decides; aedes's own timer only backs it up.
          connectTimeout: connectTimeoutMs * 2,
          maxInflightInbound: QOS2_INFLIGHT,
          preConnect: (client, packet, callback) => {
            // MQTT-3.1.3-8: an empty client id with clean session 0 gets CONNACK 2. aedes would invent an id, so the
            // fact is kept here for `authenticate`, which can answer with a CONNACK.
            if (packet.clientId === '' && packet.clean === false) emptyPersistentId.add(client);
            callback(null, true);
          },
          // A client that gives a username must prove it: a service account's password, or a device's checked
          // against the registry; only then does the username travel with its frames.
          authenticate: (client, username, password, done) => {
            const address = addressOf(client) ?? '';
            const fail = (returnCode: 2 | 3 | 4 | 5, message: string) =>
              done(Object.assign(new Error(message), { returnCode }), false);
            const bad = (why: string) => {
              ctx.metrics.brokerRefused.inc({ input: ctx.id, reason: anonymous || username ? 'bad_login' : 'not_authorized' });
              countError('auth', 'MQTT login refused (anonymous, unknown user, wrong password, or device disabled)', new Error(why));
              fail(anonymous || username ? 4 : 5, 'bad username or password');
            };
            if (emptyPersistentId.has(client)) {
              refuse('client_id_empty', new BackhaulError('BH_MQTT_CLIENT_ID', 'empty client id with clean session 0 refused (MQTT-3.1.3-8)'), {
                remoteAddress: address,
              });
              fail(2, 'identifier rejected');
              return;
            }
            const admit = (p: Principal | undefined) => {
              // A client id belongs to the login that holds it (a connection, or a session aedes keeps for it).
              const owner = ownerKey(p);
              const ids = clientIds;
              if (!ids.claim(client.id, owner, client.conn, !client.clean)) {
                refuse(
                  'client_id_taken',
                  new BackhaulError('BH_MQTT_CLIENT_ID', `client id ${JSON.stringify(client.id)} belongs to another login; CONNACK 2`),
                  { clientId: client.id, login: owner, holder: ids.ownerOf(client.id), remoteAddress: address },
                );
                fail(2, 'identifier rejected');
                return;
              }
              // Released when the connection closes (onSocketClose), also when it closed while the login was being
              // checked.
              const conn = client.conn as Socket;
              const c = conns.get(conn);
              if (c) {
                c.client = client;
                c.ids = ids;
              } else {
                ids.release(client.id, conn);
              }
              if (p) principals.set(client, p);
              done(null, true);
            };
            if (username === undefined || username === '') {
              if (anonymous) admit(undefined);
              else bad('anonymous client, and anonymous access is off');
              return;
            }
            const limiter = logins!;
            const decision = limiter.attempt(address);
            if (!decision.ok) {
              refuse(
                decision.reason === 'rate' ? 'login_rate' : 'login_backoff',
                new BackhaulError('BH_MQTT_LOGIN_RATE', `too many MQTT logins from ${address}; CONNACK 3, retry in ${decision.retryAfterMs} ms`),
                { remoteAddress: address, retryAfterMs: decision.retryAfterMs },
              );
              fail(3, 'server unavailable');
              return;
            }
            const given = password ? Buffer.from(password).toString('utf8') : '';
            const verdict = (p: Principal | undefined, why: string) => {
              if (p) {
                limiter.success(address);
                admit(p);
              } else {
                limiter.failure(address);
                bad(why);
              }
            };
            const service = users.get(username);
            if (service) {
              verdict(timingSafeEqual(digest(given), service.password) ? service.principal : undefined, `service user ${username}: wrong password`);
              return;
            }
            ctx.authenticate(username, given).then(
              (p) => verdict(p, `user ${username}`),
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
              // Stopping: a QoS 1 or 2 publish must not be acknowledged when it will not be ingested; the device resends.
              callback(packet.qos > 0 ? new Error('Backhaul is stopping') : null);
              return;
            }
            // A will has no packet id and is published once; only a client's own QoS 2 PUBLISH can come again.
            const wire = client !== null && packet.qos === 2 && typeof packet.messageId === 'number';
            const handedOver = wire ? ingestOnce(client, topic, packet) : ingest(client, topic, packet.payload, packet.qos);
            handedOver.then(
              () => {
                corkUntilNextTurn(client);
                callback(null);
              },
              (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
            );
          },
        });
        watchQoS2Store(b, receipts);
        b.on('clientError', (client, err) => {
          if (counted.has(err)) return;
          countError(`client:${err.message}`, `MQTT client ${client.id} failed`, err);
        });
        b.on('connectionError', (_client, err) => {
          countError(`conn:${err.message}`, 'MQTT connection failed before CONNECT completed', err);
        });
        b.on('connackSent', (packet, client) => {
          // Login accepted: larger packets are allowed from now on, and the connect timer is done.
          if (packet.returnCode !== 0) return;
          const c = conns.get(client.conn as Socket);
          if (!c) return;
          c.guard.accepted();
          if (c.timer !== undefined) ctx.clock.clearTimeout(c.timer);
          c.timer = undefined;
          dropConnectPacket(client);
        });
        b.on('client', (client) => log.debug({ clientId: client.id }, 'MQTT client connected'));
        b.on('clientDisconnect', (client) => log.debug({ clientId: client.id }, 'MQTT client disconnected'));

        // One listener and one refusal handler for every socket (they get the socket), so that an open connection
        // holds no closure of ours.
        function onSocketClose(this: Socket): void {
          const c = conns.get(this);
          if (!c) return;
          conns.delete(this);
          if (c.timer !== undefined) ctx.clock.clearTimeout(c.timer);
          c.timer = undefined;
          if (c.client && c.ids) c.ids.release(c.client.id, this);
          const n = (perAddress.get(c.address) ?? 1) - 1;
          if (n > 0) perAddress.set(c.address, n);
          else perAddress.delete(c.address);
        }
        const onGuardRefused = (socket: Socket, why: GuardRefusal) => {
          const address = conns.get(socket)?.address ?? socket.remoteAddress ?? '';
          const state = why.loggedIn ? 'maxPacketBytes' : 'maxConnectBytes';
          const detail =
            why.reason === 'malformed'
              ? `MQTT packet from ${address} has a remaining length longer than 4 bytes; connection closed`
              : `MQTT packet from ${address} claims ${why.claimed} bytes, over ${state} (${why.limit}); connection closed`;
          refuse(
            why.reason === 'malformed' ? 'malformed_length' : why.loggedIn ? 'packet_too_large' : 'connect_too_large',
            new BackhaulError('BH_MQTT_PACKET_TOO_LARGE', detail, { path: `inputs.${ctx.id}.${state}` }),
            { remoteAddress: address },
          );
        };

        const srv = createServer((socket) => {
          const address = socket.remoteAddress ?? '';
          // Caps first, before aedes allocates anything for the connection.
          if (conns.size >= maxConnections) {
            refuse('max_connections', new BackhaulError('BH_MQTT_CONNECTION_LIMIT', `${maxConnections} MQTT connections open (maxConnections); refused one from ${address}`), {
              remoteAddress: address,
            });
            socket.destroy();
            return;
          }
          const fromHere = perAddress.get(address) ?? 0;
          if (fromHere >= maxPerAddress) {
            refuse(
              'max_connections_per_address',
              new BackhaulError('BH_MQTT_CONNECTION_LIMIT', `${maxPerAddress} MQTT connections open from ${address} (maxConnectionsPerAddress); refused one more`),
              { remoteAddress: address },
            );
            socket.destroy();
            return;
          }
          perAddress.set(address, fromHere + 1);
          const guard = new PacketGuard(maxConnectBytes, maxPacketBytes);
          const c: Conn = { address, guard, timer: undefined, client: undefined, ids: undefined };
          conns.set(socket, c);
          // This closure lives until the login is accepted (the timer is dropped then) or the socket closes.
          c.timer = ctx.clock.setTimeout(() => {
            c.timer = undefined;
            if (guard.isLoggedIn || socket.destroyed) return;
            refuse('connect_timeout', new BackhaulError('BH_MQTT_CONNECT_TIMEOUT', `MQTT login from ${address} not accepted within ${connectTimeoutMs} ms; connection closed`), {
              remoteAddress: address,
            });
            socket.destroy();
          }, connectTimeoutMs);
          socket.on('close', onSocketClose);
          guardSocket(socket, guard, onGuardRefused);
          slimParser(b.handle(socket));
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
        await new Promise((r) => setImmediate(r)); // their PUBACKs wait in a corked socket until the next turn
        if (b) await new Promise<void>((r) => b.close(() => r()));
        for (const s of [...conns.keys()]) s.destroy();
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
          // A scan of the open connections, rather than an index by username kept for every connection: this runs
          // when a device's password is reset, rarely, and costs microseconds per thousand connections.
          const found: Client[] = [];
          for (const c of conns.values()) {
            const client = c.client;
            if (client && !client.closed && principals.get(client)?.username === username) found.push(client);
          }
          for (const client of found) client.close();
          return found.length;
        },
        address() {
          return { ...(opts.advertise !== undefined ? { host: opts.advertise } : {}), port: boundPort };
        },
      },
    };
  },
});
