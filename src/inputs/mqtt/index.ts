// MQTT client input (mqtt.js 5): subscribes to topic filters on an external broker. Each message is handed to the
// hub through `client.handleMessage`, mqtt.js's backpressure hook: mqtt.js processes the next incoming packet, and
// sends the PUBACK of a QoS 1 message, only after its callback (build/lib/handlers/publish.js). We call it once
// `ctx.emit` resolved, so a message is acknowledged only when its readings are durably queued.
//
// Reconnects use exponential backoff with jitter: a 'close' listener placed before mqtt.js's own sets
// `client.options.reconnectPeriod`, which mqtt.js reads when it arms the next attempt; 'connect' resets it.
// mqtt.js resubscribes by itself after a reconnect when the session is clean or the broker kept no session.
// TLS (mqtts://, wss://): the `tls` files are read again before every reconnect; a refused certificate is counted in
// backhaul_tls_failures_total with its reason and retried like any outage.
import { backoffMs } from '../../core/backoff.js';
import { safeUrl } from '../../core/url.js';
import { randomBytes } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { defineInput, type Input } from '../../core/driver.js';
import { BackhaulError, errorText } from '../../core/errors.js';
import { LogThrottle } from '../../core/throttle.js';
import type { Frame } from '../../core/types.js';
import { topicFilterError, topicProblems } from '../../core/topic.js';
import { InFlight } from '../../core/inflight.js';
import { bytes } from '../util.js';
import { setMqttTls, TlsClientSchema, tlsConfigProblems, tlsConnectOptions, tlsFailure, tlsFailureText } from '../../core/tls-client.js';

const options = Type.Object(
  {
    url: Type.String({
      urlCredentials: true,
      description: 'Broker URL: `mqtt://host:1883`, `mqtts://host:8883`, `ws://` or `wss://`. Put credentials in `username`/`password`, not here.',
      minLength: 1,
    }),
    topics: Type.Array(Type.String({ minLength: 1 }), { description: 'Topic filters to subscribe to (`+` and `#` allowed).', minItems: 1 }),
    qos: Type.Union([Type.Literal(0), Type.Literal(1)], { description: 'Subscription QoS. 1: the broker redelivers what Backhaul has not acknowledged.', default: 1 }),
    username: Type.Optional(Type.String({ description: 'MQTT username.' })),
    password: Type.Optional(Type.String({ secret: true, description: 'MQTT password; use `{ "secret": NAME }`.' })),
    clientId: Type.Optional(Type.String({ description: 'MQTT client id. Default: `backhaul-<input id>-<random>`.', minLength: 1 })),
    clean: Type.Boolean({
      description: 'Clean session. false (with a fixed clientId) lets the broker keep QoS 1 messages while Backhaul is away.',
      default: true,
    }),
    connectTimeoutMs: Type.Integer({
      description: 'How long start() waits for the first connection and subscription before failing.',
      minimum: 100,
      default: 10000,
    }),
    reconnectMinMs: Type.Integer({ description: 'First reconnect delay after the connection drops.', minimum: 100, default: 1000 }),
    reconnectMaxMs: Type.Integer({ description: 'Longest reconnect delay (the delay doubles per failed attempt, with jitter).', minimum: 100, default: 30000 }),
    tls: Type.Optional(TlsClientSchema),
    trustTopics: Type.Boolean({
      description:
        'The broker is the Mosquitto that `brokerSync` keeps in step with the registry, where only a device may publish under its base topic: ' +
        'a reading on a device\'s own base topic is then `authenticated`, when no other device shares that base topic. Needs `brokerSync`.',
      default: false,
    }),
  },
  { additionalProperties: false },
);


/** Refusals that will not go away by retrying (MQTT 3.1.1 return codes 4, 5; MQTT 5 reason codes 134, 135). */
function isAuthRefusal(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 4 || code === 5 || code === 134 || code === 135;
}

export const mqttInput = defineInput({
  kind: 'input',
  type: 'mqtt',
  description: 'MQTT client: subscribes to topic filters on an external broker; each message becomes a frame.',
  options,
  defaultDecoder: 'json',
  topicsProveDevices: (opts) => opts.trustTopics === true,
  check(opts) {
    return [...topicProblems(opts.topics ?? [], 'topics'), ...tlsConfigProblems(opts.tls, opts.url ?? '')];
  },
  create(opts, ctx): Input {
    const url = safeUrl(opts.url);
    const { topics, qos } = opts;
    const minMs = opts.reconnectMinMs;
    const maxMs = Math.max(minMs, opts.reconnectMaxMs);
    const connectTimeoutMs = opts.connectTimeoutMs;
    const clientId = opts.clientId ?? `backhaul-${ctx.id}-${randomBytes(4).toString('hex')}`;
    const log = ctx.logger;
    const inflight = new InFlight();
    const throttle = new LogThrottle(ctx.clock);
    let client: MqttClient | undefined;
    let stopped = false;
    let attempt = 0;

    const nextDelay = () => backoffMs(attempt++, minMs, maxMs);

    const handle = async (packet: IPublishPacket): Promise<void> => {
      const payload = typeof packet.payload === 'string' ? new TextEncoder().encode(packet.payload) : bytes(packet.payload);
      const frame: Frame = { input: ctx.id, payload, receivedAt: ctx.clock.now(), topic: packet.topic };
      if (packet.qos === 0) ctx.metrics.framesUnacknowledged.inc({ input: ctx.id });
      await inflight.track(ctx.emit(frame));
    };

    return {
      async start() {
        for (const f of topics) {
          const why = topicFilterError(f);
          if (why) throw new BackhaulError('BH_CONFIG_SCHEMA', `${why}: ${JSON.stringify(f)}`, { path: `inputs.${ctx.id}.topics` });
        }
        stopped = false;
        const clientOpts: IClientOptions = {
          clientId,
          clean: opts.clean,
          reconnectPeriod: minMs,
          connectTimeout: connectTimeoutMs,
          resubscribe: true,
          reconnectOnConnackError: true,
          manualConnect: true,
          ...(opts.username !== undefined ? { username: opts.username } : {}),
          ...(opts.password !== undefined ? { password: opts.password } : {}),
        };
        const tls = opts.tls;
        const tlsAt = `inputs.${ctx.id}.tls`;
        if (tls) {
          if (tls.insecure) log.warn({ url }, 'tls.insecure: the broker\'s certificate is NOT verified; anyone on the path can read and change this traffic');
          setMqttTls(clientOpts, tlsConnectOptions(tls, (p) => ctx.resolvePath(p), tlsAt)); // BH_TLS_FILE names the option
        }
        let c: MqttClient;
        try {
          c = mqtt.connect(opts.url, clientOpts);
        } catch (err) {
          throw new BackhaulError('BH_INPUT_FAILED', `cannot use MQTT url ${url}: ${errorText(err)}`, { path: `inputs.${ctx.id}.url`, cause: err });
        }
        client = c;
        c.handleMessage = (packet, callback) => {
          if (stopped) return; // not acknowledged: the broker redelivers it to a persistent session
          // The PUBACK belongs to the connection the message came on. If that connection was lost while the frame
          // was being made durable, mqtt.js would queue the PUBACK and send it on the next connection, where the
          // broker may have given the same packet id to another message (acknowledging it before it is durable).
          const stream = c.stream;
          handle(packet).then(
            () => {
              if (c.stream === stream && c.connected) callback();
            },
            (err: unknown) => {
              ctx.metrics.inputErrors.inc({ input: ctx.id });
              log.error({ err: errorText(err), topic: packet.topic }, 'could not hand a message to the data path; not acknowledged, reconnecting');
              c.stream?.destroy(); // the broker redelivers unacknowledged QoS 1 messages after the reconnect
            },
          );
        };
        let lastError: unknown;
        let firstPending = true;
        let outageSince: number | undefined;
        // Runs before mqtt.js's own 'close' listener, which arms the next attempt with options.reconnectPeriod.
        c.prependListener('close', () => {
          c.options.reconnectPeriod = nextDelay();
        });
        // mqtt.js emits 'offline' once per outage (when it starts reconnecting), not on every failed attempt.
        c.on('offline', () => {
          if (stopped || firstPending) return;
          outageSince = ctx.clock.now();
          ctx.metrics.inputErrors.inc({ input: ctx.id });
          log.warn({ url, err: lastError === undefined ? undefined : errorText(lastError) }, 'MQTT connection lost; reconnecting with backoff');
        });
        if (tls) {
          // mqtt.js emits 'reconnect' just before it builds the next stream from c.options: read the files again, so
          // a renewed certificate, key or CA takes effect without a restart. An unreadable file keeps the last ones.
          c.on('reconnect', () => {
            try {
              setMqttTls(c.options, tlsConnectOptions(tls, (p) => ctx.resolvePath(p), tlsAt));
            } catch (e) {
              const suppressed = throttle.take('tls file');
              if (suppressed !== null) log.error({ err: errorText(e), suppressed }, 'cannot read a TLS file again; reconnecting with the last ones read');
            }
          });
        }
        c.on('error', (err) => {
          const failure = tlsFailure(err);
          if (failure) {
            ctx.metrics.tlsFailures.inc({ client: `inputs.${ctx.id}`, reason: failure.reason });
            const refused = new BackhaulError(failure.code, tlsFailureText(failure, `input ${ctx.id}`, url), { path: tlsAt });
            lastError = refused;
            if (stopped) return;
            const suppressed = throttle.take(`tls ${failure.reason}`);
            if (suppressed !== null) log.error({ url, code: failure.code, reason: failure.reason, suppressed }, refused.message);
            return;
          }
          lastError = err;
          if (stopped) return;
          // While connecting or during an outage errors are expected (logged once as the outage); when connected
          // (a refused resubscription, a protocol error) they matter.
          if (firstPending || outageSince !== undefined || !c.connected) {
            log.debug({ err: errorText(err), url }, 'MQTT client error');
            return;
          }
          const suppressed = throttle.take(errorText(err));
          if (suppressed !== null) log.warn({ err: errorText(err), url, ...(suppressed > 0 ? { suppressed } : {}) }, 'MQTT client error');
        });
        c.on('connect', () => {
          attempt = 0;
          c.options.reconnectPeriod = minMs;
          lastError = undefined;
          if (outageSince !== undefined) log.info({ url, downMs: ctx.clock.now() - outageSince }, 'MQTT connection restored');
          outageSince = undefined;
        });

        try {
          await new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => {
              // A refused certificate keeps its own code (BH_TLS_VERIFY, BH_TLS_HANDSHAKE) and reason.
              if (lastError instanceof BackhaulError) {
                reject(lastError);
                return;
              }
              const why = lastError ? `: ${errorText(lastError)}` : '';
              reject(new BackhaulError('BH_INPUT_FAILED', `no connection to MQTT broker ${url} within ${connectTimeoutMs} ms${why}`, {
                path: `inputs.${ctx.id}.url`,
              }));
            }, connectTimeoutMs);
            const onError = (err: Error) => {
              if (!isAuthRefusal(err)) return;
              clearTimeout(timer);
              reject(new BackhaulError('BH_INPUT_FAILED', `MQTT broker ${url} refused the credentials (${err.message})`, {
                path: `inputs.${ctx.id}.username`,
                cause: err,
              }));
            };
            c.on('error', onError);
            c.once('connect', () => {
              c.subscribe(topics, { qos }, (err, granted) => {
                clearTimeout(timer);
                c.off('error', onError);
                const refused = (granted ?? []).filter((g) => (g.qos & 0x80) !== 0).map((g) => g.topic);
                if (err || refused.length > 0) {
                  const what = refused.length > 0 ? refused.join(', ') : topics.join(', ');
                  reject(new BackhaulError('BH_INPUT_FAILED', `MQTT broker ${url} refused the subscription to ${what}${err ? `: ${err.message}` : ''}`, {
                    path: `inputs.${ctx.id}.topics`,
                    cause: err ?? undefined,
                  }));
                  return;
                }
                resolve();
              });
            });
            c.connect();
          });
        } catch (err) {
          stopped = true;
          client = undefined;
          await c.endAsync(true).catch(() => undefined);
          throw err;
        }
        firstPending = false;
        log.info({ url, topics, clientId }, 'subscribed to MQTT broker');
      },

      async stop() {
        stopped = true;
        const c = client;
        client = undefined;
        await inflight.settle(); // emits in flight finish; their PUBACKs go out if the link is still up
        if (!c) return;
        const graceful = c.endAsync(false).then(() => true, () => false);
        const timeout = new Promise<boolean>((r) => setTimeout(() => r(false), 2000).unref());
        if (!(await Promise.race([graceful, timeout]))) await c.endAsync(true).catch(() => undefined);
      },

      async publish(topic, payload) {
        const c = client;
        // mqtt.js would queue it until a reconnect; an order must fail now instead, so the operator hears of it.
        if (!c?.connected) throw new BackhaulError('BH_INPUT_FAILED', `not connected to MQTT broker ${url}`, { path: `inputs.${ctx.id}.url` });
        await c.publishAsync(topic, Buffer.from(payload), { qos: 1 });
      },

      info() {
        return { url };
      },
    };
  },
});
