// Embedded MQTT broker (aedes 1.x: MQTT 3.1.1 and 3.1, not 5) on plain TCP, TLS (mqtts), WebSocket (ws) and
// WebSocket over TLS (wss) listeners: the input's definition, its lifecycle (start, stop, info, the BrokerPort) and
// the wiring of aedes's hooks, which live by concern beside it:
//
//   authenticate.ts  logins: service users, devices, the login rate limit, client-id ownership
//   authorize.ts     the publish and subscribe ACL
//   publish.ts       the publish path into emit (acknowledged only once durably queued), PUBACK corking, QoS 2
//   state.ts         what they share (one BrokerState per input)
//   parser.ts        lighter per-connection memory in aedes's parser
//
// Before aedes parses anything, each socket's bytes pass a check of every packet's fixed header (guard.ts), and
// connections are capped per address and in total, with a connect timeout (here): so no client can make the process
// keep more than a small packet before it has logged in. Every listener hands its connections to the same `accept`,
// so the limits hold across them: a WebSocket's message stream is guarded like a socket's bytes.
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { Duplex } from 'node:stream';
import { createWebSocketStream, WebSocketServer, type WebSocket } from 'ws';
import { Type } from '@sinclair/typebox';
import { Aedes, type Client } from 'aedes';
import { defineInput, type Input } from '../../core/driver.js';
import { BackhaulError } from '../../core/errors.js';
import { RateLimiter } from '../../core/ratelimit.js';
import { topicFilterError, topicProblems } from '../../core/topic.js';
import { listenError, reachableHost } from '../../core/listen.js';
import { ServerCertificates, serverOptions, TlsServerOptions } from '../../core/tls-server.js';
import { loginHooks } from './authenticate.js';
import { rememberTlsSocket } from './certificate.js';
import { subscribeHook } from './authorize.js';
import { guardSocket, PacketGuard, type GuardRefusal } from './guard.js';
import { dropConnectPacket, slimParser } from './parser.js';
import { publishHook } from './publish.js';
import { ClientIds, QoS2Receipts, watchQoS2Store } from './sessions.js';
import { BrokerState, QOS2_INFLIGHT, type Conn } from './state.js';

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
    port: Type.Integer({ description: 'TCP port for plain MQTT; 0 picks any free port (see the logged url).', minimum: 0, maximum: 65535, default: 1883 }),
    tcp: Type.Boolean({
      description: 'Listen for plain MQTT on `port`. `false` serves MQTT only on the TLS and WebSocket listeners below.',
      default: true,
    }),
    tls: Type.Optional(TlsServerOptions),
    tlsPort: Type.Integer({
      description: 'TCP port for MQTT over TLS (`mqtts`), served when `tls` is given; 0 picks any free port.',
      minimum: 0,
      maximum: 65535,
      default: 8883,
    }),
    wsPort: Type.Optional(Type.Integer({ description: 'TCP port for MQTT over WebSocket (`ws`, plain); none by default; 0 picks any free port.', minimum: 0, maximum: 65535 })),
    wssPort: Type.Optional(
      Type.Integer({ description: 'TCP port for MQTT over WebSocket over TLS (`wss`, needs `tls`); none by default; 0 picks any free port.', minimum: 0, maximum: 65535 }),
    ),
    wsPath: Type.String({ description: 'URL path of the WebSocket listeners (clients ask for subprotocol `mqtt`).', pattern: '^/', default: '/mqtt' }),
    topics: Type.Array(Type.String({ minLength: 1 }), {
      description: 'Topic filters (MQTT wildcards `+` and `#`) whose publishes are ingested.',
      default: ['#'],
    }),
    exclude: Type.Array(Type.String({ minLength: 1 }), {
      description: 'Topic filters never ingested, even when `topics` matches (Backhaul\'s own MQTT sink publishes under `backhaul/`). `$SYS/#` is never ingested.',
      default: ['backhaul/#'],
    }),
    anonymous: Type.Boolean({
      description: 'Let clients connect without a login, and publish and subscribe anywhere. Off by default: only `users` and registered devices with their own credentials connect.',
      default: false,
    }),
    users: Type.Array(
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
    ),
    certificateId: Type.Union([Type.Literal('cn'), Type.Literal('san-uri'), Type.Literal('san-dns'), Type.Literal('san-email')], {
      description:
        'Where a device\'s id is read from in its client certificate (TLS listeners with `tls.ca`): the subject CN, or the first URI, DNS or email SAN ' +
        '(a `urn:backhaul:device:` URI, as `backhaul certs device` writes, gives the id it escapes). The registry must hold that certificate for that device.',
      default: 'cn',
    }),
    advertise: Type.Optional(
      Type.String({ minLength: 1, description: 'Host name devices should use for this broker, told them by the bootstrap call; default: the host they reached the bootstrap API by.' }),
    ),
    maxPacketBytes: Type.Integer({
      description: 'Largest MQTT packet (fixed header included) a logged-in client may send; a larger one closes its connection as soon as its header arrives.',
      minimum: 1024,
      maximum: 268435460,
      default: DEFAULTS.maxPacketBytes,
    }),
    maxConnectBytes: Type.Integer({
      description: 'Largest packet before the broker accepted the client\'s login (its CONNECT, and anything sent before the CONNACK).',
      minimum: 256,
      maximum: 65536,
      default: DEFAULTS.maxConnectBytes,
    }),
    connectTimeoutMs: Type.Integer({
      description: 'A connection whose login is not accepted within this time (no CONNECT, or a CONNECT sent too slowly) is closed.',
      minimum: 100,
      default: DEFAULTS.connectTimeoutMs,
    }),
    maxConnections: Type.Integer({
      description: 'Open connections at most; further ones are closed at once and counted.',
      minimum: 1,
      default: DEFAULTS.maxConnections,
    }),
    maxConnectionsPerAddress: Type.Integer({
      description: 'Open connections at most from one client address (raise it for many devices behind one NAT).',
      minimum: 1,
      default: DEFAULTS.maxConnectionsPerAddress,
    }),
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

type Scheme = 'mqtt' | 'mqtts' | 'ws' | 'wss';

/** Stops a listener taking connections (open ones are closed by stop(), which destroys every socket). */
function closeListener(o: { server: Server | HttpServer; wss?: WebSocketServer }): Promise<void> {
  // The WebSocket server leaves the http server to us; its clients' streams are in `conns` and destroyed there.
  o.wss?.close();
  return new Promise<void>((r) => o.server.close(() => r()));
}

export const brokerInput = defineInput({
  kind: 'input',
  type: 'broker',
  description: 'Embedded MQTT 3.1.1 broker (QoS 0, 1 and 2; no MQTT 5): devices publish to it; matching publishes become frames.',
  options,
  defaultDecoder: 'json',
  check(opts) {
    const problems = [...topicProblems(opts.topics, 'topics'), ...topicProblems(opts.exclude, 'exclude')];
    const seen = new Set<string>();
    opts.users.forEach((u, i) => {
      problems.push(...topicProblems(u.publish ?? [], `users[${i}].publish`), ...topicProblems(u.subscribe ?? [], `users[${i}].subscribe`));
      if (seen.has(u.username)) problems.push({ path: `users[${i}].username`, message: `the username ${JSON.stringify(u.username)} is given twice` });
      seen.add(u.username);
    });
    if (opts.wssPort !== undefined && opts.tls === undefined) problems.push({ path: 'wssPort', message: 'a wss listener needs a `tls` section (certificate and key)' });
    if (!opts.tcp && opts.tls === undefined && opts.wsPort === undefined) {
      problems.push({ path: 'tcp', message: 'with `tcp: false` give `tls` (mqtts) or `wsPort`: the broker would listen nowhere' });
    }
    return problems;
  },
  create(opts, ctx): Input {
    const { host, port, topics, exclude, maxPacketBytes, maxConnectBytes, connectTimeoutMs, maxConnections } = opts;
    const maxPerAddress = opts.maxConnectionsPerAddress;
    const log = ctx.logger;
    const s = new BrokerState(ctx, opts.anonymous);
    const { conns, principals } = s;
    // aedes's hooks, made once per input; what they keep (tables, caches) is made with them, never per message.
    const { preConnect, authenticate } = loginHooks(s, opts.users, opts.certificateId);
    const authorizeSubscribe = subscribeHook(s);
    const authorizePublish = publishHook(s, topics, exclude);
    const perAddress = new Map<string, number>();
    let broker: Aedes | undefined;
    /** The listeners open, with the url each is reached at. */
    let servers: Array<{ scheme: Scheme; server: Server | HttpServer; wss?: WebSocketServer; url: string; port: number }> = [];
    let certs: ServerCertificates | undefined;
    let boundPort = port;

    return {
      async start() {
        for (const f of [...topics, ...exclude]) {
          const why = topicFilterError(f);
          if (why) throw new BackhaulError('BH_CONFIG_SCHEMA', `${why}: ${JSON.stringify(f)}`, { path: `inputs.${ctx.id}.topics` });
        }
        const tlsOpts = opts.tls;
        let c: ServerCertificates | undefined;
        if (tlsOpts) {
          c = new ServerCertificates({
            options: tlsOpts,
            resolvePath: (p) => ctx.resolvePath(p),
            path: `inputs.${ctx.id}.tls`,
            logger: log,
            clock: ctx.clock,
            onError: () => ctx.metrics.inputErrors.inc({ input: ctx.id }),
          });
          c.start(); // throws BH_TLS_FILE naming the option at fault, before anything is made that would need closing
        }
        s.logins = new RateLimiter(ctx.clock, { ...DEFAULTS.loginLimit, ...opts.loginLimit });
        s.clientIds = new ClientIds();
        s.receipts = new QoS2Receipts(QOS2_INFLIGHT);
        const b = await Aedes.createBroker({
          // Ours (below, per socket) decides; aedes's own timer only backs it up.
          connectTimeout: connectTimeoutMs * 2,
          maxInflightInbound: QOS2_INFLIGHT,
          preConnect,
          authenticate,
          authorizeSubscribe,
          authorizePublish,
        });
        watchQoS2Store(b, s.receipts);
        b.on('clientError', (client, err) => {
          if (s.counted.has(err)) return;
          s.countError(`client:${err.message}`, `MQTT client ${client.id} failed`, err);
        });
        b.on('connectionError', (_client, err) => {
          s.countError(`conn:${err.message}`, 'MQTT connection failed before CONNECT completed', err);
        });
        b.on('connackSent', (packet, client) => {
          // Login accepted: larger packets are allowed from now on, and the connect timer is done.
          if (packet.returnCode !== 0) return;
          const c = conns.get(client.conn);
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
        function onSocketClose(this: Duplex): void {
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
        const onGuardRefused = (socket: Duplex, why: GuardRefusal) => {
          const address = conns.get(socket)?.address ?? '';
          const state = why.loggedIn ? 'maxPacketBytes' : 'maxConnectBytes';
          const detail =
            why.reason === 'malformed'
              ? `MQTT packet from ${address} has a remaining length longer than 4 bytes; connection closed`
              : `MQTT packet from ${address} claims ${why.claimed} bytes, over ${state} (${why.limit}); connection closed`;
          s.refuse(
            why.reason === 'malformed' ? 'malformed_length' : why.loggedIn ? 'packet_too_large' : 'connect_too_large',
            new BackhaulError('BH_MQTT_PACKET_TOO_LARGE', detail, { path: `inputs.${ctx.id}.${state}` }),
            { remoteAddress: address },
          );
        };

        const accept = (socket: Duplex, address: string): void => {
          // Caps first, before aedes allocates anything for the connection.
          if (conns.size >= maxConnections) {
            s.refuse('max_connections', new BackhaulError('BH_MQTT_CONNECTION_LIMIT', `${maxConnections} MQTT connections open (maxConnections); refused one from ${address}`), {
              remoteAddress: address,
            });
            socket.destroy();
            return;
          }
          const fromHere = perAddress.get(address) ?? 0;
          if (fromHere >= maxPerAddress) {
            s.refuse(
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
            s.refuse('connect_timeout', new BackhaulError('BH_MQTT_CONNECT_TIMEOUT', `MQTT login from ${address} not accepted within ${connectTimeoutMs} ms; connection closed`), {
              remoteAddress: address,
            });
            socket.destroy();
          }, connectTimeoutMs);
          socket.on('close', onSocketClose);
          guardSocket(socket, guard, onGuardRefused);
          slimParser(b.handle(socket));
        };
        const onTcp = (socket: Socket) => accept(socket, socket.remoteAddress ?? '');
        const onWebSocket = (ws: WebSocket, req: IncomingMessage) => {
          const address = req.socket.remoteAddress ?? '';
          const stream = createWebSocketStream(ws);
          // What addressOf (state.ts) reads for logins, rate limits and frames' identity, as on a socket.
          Object.defineProperty(stream, 'remoteAddress', { value: address });
          rememberTlsSocket(stream, req.socket); // a wss client's certificate, for certificate logins
          stream.on('error', (err) => s.countError(`ws:${err.message}`, 'MQTT WebSocket stream failed', err));
          accept(stream, address);
        };

        // Before a TLS handshake or a WebSocket upgrade (which cost more than a TCP accept), the caps are checked on
        // the raw socket too, so a flood of unfinished handshakes is bounded like one of idle TCP connections. It only
        // refuses; `accept` counts the connection once it is ready for MQTT.
        const overCaps = (socket: Socket): void => {
          const address = socket.remoteAddress ?? '';
          if (conns.size < maxConnections && (perAddress.get(address) ?? 0) < maxPerAddress) return;
          const reason = conns.size >= maxConnections ? 'max_connections' : 'max_connections_per_address';
          s.refuse(reason, new BackhaulError('BH_MQTT_CONNECTION_LIMIT', `MQTT connections over ${reason === 'max_connections' ? 'maxConnections' : 'maxConnectionsPerAddress'}; refused one from ${address} before its handshake`), {
            remoteAddress: address,
          });
          socket.destroy();
        };
        // An HTTP client that never sends its upgrade request is dropped like one that never sends CONNECT.
        const httpLimits = { headersTimeout: connectTimeoutMs, requestTimeout: connectTimeoutMs };
        const onTlsError = (err: Error) => s.countError(`tls:${err.message}`, 'TLS handshake failed', err);
        const wsServer = (srv: HttpServer): WebSocketServer => {
          // A WebSocket message larger than a packet can be refused before it is buffered; the guard sees the rest.
          const w = new WebSocketServer({ server: srv, path: opts.wsPath, maxPayload: maxPacketBytes + 5 });
          w.on('connection', onWebSocket);
          w.on('error', (err) => s.countError('ws-server', 'MQTT WebSocket listener error', err));
          return w;
        };
        const plan: Array<{ scheme: Scheme; port: number; portPath: string; make: () => { server: Server | HttpServer; wss?: WebSocketServer } }> = [];
        if (opts.tcp) plan.push({ scheme: 'mqtt', port, portPath: 'port', make: () => ({ server: createServer(onTcp) }) });
        if (c) {
          const tls = c.tls;
          plan.push({
            scheme: 'mqtts',
            port: opts.tlsPort,
            portPath: 'tlsPort',
            make: () => {
              // The handshake counts against the connect timeout too: a client that never finishes it is dropped.
              const srv = createTlsServer({ ...serverOptions(tls, true), handshakeTimeout: connectTimeoutMs }, onTcp);
              srv.on('connection', overCaps);
              srv.on('tlsClientError', onTlsError);
              c.attach(srv);
              return { server: srv };
            },
          });
        }
        if (opts.wsPort !== undefined) {
          plan.push({
            scheme: 'ws',
            port: opts.wsPort,
            portPath: 'wsPort',
            make: () => {
              const srv = createHttpServer(httpLimits);
              srv.on('connection', overCaps);
              return { server: srv, wss: wsServer(srv) };
            },
          });
        }
        if (c && opts.wssPort !== undefined) {
          const tls = c.tls;
          plan.push({
            scheme: 'wss',
            port: opts.wssPort,
            portPath: 'wssPort',
            make: () => {
              const srv = createHttpsServer({ ...serverOptions(tls, true), ...httpLimits, handshakeTimeout: connectTimeoutMs });
              srv.on('connection', overCaps);
              srv.on('tlsClientError', onTlsError);
              c.attach(srv);
              return { server: srv, wss: wsServer(srv) };
            },
          });
        }
        const opened: typeof servers = [];
        try {
          for (const l of plan) {
            const { server: srv, wss } = l.make();
            try {
              await new Promise<void>((resolve, reject) => {
                srv.once('error', reject);
                srv.listen({ host, port: l.port }, () => {
                  srv.off('error', reject);
                  resolve();
                });
              });
            } catch (err) {
              throw listenError(err, host, l.port, ctx.id, `inputs.${ctx.id}.${l.portPath}`);
            }
            srv.on('error', (err) => s.countError('server', 'MQTT listener error', err));
            const addr = srv.address();
            const bound = typeof addr === 'object' && addr ? addr.port : l.port;
            const path = l.scheme === 'ws' || l.scheme === 'wss' ? opts.wsPath : '';
            opened.push({ scheme: l.scheme, server: srv, ...(wss ? { wss } : {}), port: bound, url: `${l.scheme}://${reachableHost(host)}:${bound}${path}` });
          }
        } catch (err) {
          c?.stop();
          await Promise.all(opened.map((o) => closeListener(o)));
          await new Promise<void>((r) => b.close(() => r()));
          throw err;
        }
        boundPort = opened.find((o) => o.scheme === 'mqtt')?.port ?? opened.find((o) => o.scheme === 'mqtts')?.port ?? port;
        broker = b;
        servers = opened;
        certs = c;
        s.accepting = true;
        for (const o of opened) log.info({ url: o.url }, 'embedded MQTT broker listening');
      },

      reloadCertificates() {
        return certs ? certs.reload() : undefined;
      },

      async stop() {
        s.accepting = false;
        const open = servers;
        const b = broker;
        servers = [];
        broker = undefined;
        certs?.stop();
        certs = undefined;
        const closed = Promise.all(open.map((o) => closeListener(o)));
        await s.inflight.settle(); // let publishes already being ingested be acknowledged
        await new Promise((r) => setImmediate(r)); // their PUBACKs wait in a corked socket until the next turn
        if (b) await new Promise<void>((r) => b.close(() => r()));
        for (const socket of [...conns.keys()]) socket.destroy();
        await closed;
      },

      info() {
        // `url`: the first listener (plain MQTT when there is one); then one key per further listener (`mqtts`, `wss`, …).
        const first = servers[0]?.url ?? `${opts.tcp ? 'mqtt' : 'mqtts'}://${reachableHost(host)}:${boundPort}`;
        return { url: first, ...Object.fromEntries(servers.slice(1).map((o) => [o.scheme, o.url])) };
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
          const mqtts = servers.find((o) => o.scheme === 'mqtts')?.port;
          const plain = servers.some((o) => o.scheme === 'mqtt');
          // Plain MQTT stays the port devices are told when there is one (a device without TLS keeps working).
          const where = plain ? { port: boundPort, ...(mqtts !== undefined ? { tlsPort: mqtts } : {}) } : { port: mqtts ?? boundPort, tls: mqtts !== undefined };
          return { ...(opts.advertise !== undefined ? { host: opts.advertise } : {}), ...where };
        },
      },
    };
  },
});
