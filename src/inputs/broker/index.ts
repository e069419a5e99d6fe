// Embedded MQTT broker (aedes 1.x) on a plain TCP listener. Every PUBLISH whose topic matches `topics` and none of
// `exclude` becomes a frame; the frame is handed to the hub inside aedes's `authorizePublish` hook, which runs before
// aedes writes the PUBACK of a QoS 1 publish (lib/handlers/publish.js: authorizePublish, then enqueuePublish writes
// the PUBACK). So a device's QoS 1 publish is acknowledged only once its readings are durably queued. After the hook
// the message is delivered to the broker's own subscribers as usual.
import { createServer, type Server, type Socket } from 'node:net';
import { Type } from '@sinclair/typebox';
import { Aedes, type Client } from 'aedes';
import { defineInput, type Input } from '../../core/driver.js';
import { BackhaulError } from '../../core/errors.js';
import { LogThrottle } from '../../core/throttle.js';
import type { Frame, TransportIdentity } from '../../core/types.js';
import { anyTopicMatches, topicFilterError, topicProblems } from '../topic.js';
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
  },
  { additionalProperties: false },
);

export const brokerInput = defineInput({
  kind: 'input',
  type: 'broker',
  description: 'Embedded MQTT broker (QoS 0 and 1): devices publish to it; matching publishes become frames.',
  options,
  defaultDecoder: 'json',
  check(opts) {
    return [...topicProblems(opts.topics ?? [], 'topics'), ...topicProblems(opts.exclude ?? [], 'exclude')];
  },
  create(opts, ctx): Input {
    const host = opts.host ?? '0.0.0.0';
    const port = opts.port ?? 1883;
    const topics = opts.topics ?? ['#'];
    const exclude = opts.exclude ?? ['backhaul/#'];
    const log = ctx.logger;
    const throttle = new LogThrottle(ctx.clock);
    const inflight = new InFlight();
    const usernames = new WeakMap<Client, string | undefined>();
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
      const username = usernames.get(client);
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
            if (username === undefined || username === '') {
              done(null, true);
              return;
            }
            ctx.authenticate(username, password ? Buffer.from(password).toString('utf8') : '').then(
              (ok) => {
                if (ok) {
                  usernames.set(client, username);
                  done(null, true);
                  return;
                }
                countError('auth', 'MQTT login refused (unknown user, wrong password, or device disabled)', new Error(`user ${username}`));
                done(Object.assign(new Error('bad username or password'), { returnCode: 4 }), false);
              },
              (err: unknown) => done(Object.assign(err instanceof Error ? err : new Error(String(err)), { returnCode: 3 }), false),
            );
          },
          authorizePublish: (client, packet, callback) => {
            const topic = packet.topic;
            if (topic.startsWith('$SYS/')) {
              callback(new Error('$SYS topics are reserved'));
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
    };
  },
});
