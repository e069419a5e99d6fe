// mqtt: publish readings and events to a broker. One message per value (topic with {measurement}) or per reading;
// a write resolves once the broker acknowledged every message (PUBACK at QoS 1). Only the outbox resends: nothing is
// buffered inside mqtt.js while offline (a write then fails at once, retryable), and QoS 1 publishes still in flight
// when the connection drops (or when a batch times out) are taken out of mqtt.js's store, which it would otherwise
// replay after the next CONNACK beside the outbox's retry. The client reconnects in the background; each CONNACK
// tells the runner (`onReady`) to retry now. TLS (mqtts://, wss://): the `tls` files are read again before every
// reconnect, and a refused certificate makes writes fail with BH_TLS_VERIFY and its reason until a connection works.
import { errorText } from '../../core/errors.js';
import { randomBytes } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { connect, type IClientOptions, type IClientPublishOptions, type MqttClient } from 'mqtt';
import { defineSink, SinkError } from '../../core/driver.js';
import type { Message, Reading } from '../../core/types.js';
import { LogThrottle } from '../../core/throttle.js';
import { safeUrl } from '../../core/url.js';
import { setMqttTls, tlsConfigProblems, TlsClientSchema, tlsConnectOptions, tlsFailure, tlsFailureText, type TlsFailure } from '../../core/tls-client.js';
import { messageToJson, messageToSenml, renderTopic, topicTemplateError, valueToJson } from '../format.js';

const Options = Type.Object(
  {
    url: Type.String({ pattern: '^[Mm][Qq][Tt][Tt][Ss]?://', urlCredentials: true, description: 'Broker address, `mqtt://host[:1883]` or `mqtts://host[:8883]` (TLS: see `tls`).' }),
    username: Type.Optional(Type.String({ description: 'MQTT username.' })),
    password: Type.Optional(Type.String({ secret: true, description: 'MQTT password; use `{"secret": NAME}`.' })),
    clientId: Type.Optional(
      Type.String({ minLength: 1, maxLength: 200, description: 'MQTT client id. Default `backhaul-<sink id>-<random>`.' }),
    ),
    topic: Type.String({
        minLength: 1,
        default: 'backhaul/{device}/{measurement}',
        description:
          'Topic template for readings; placeholders {device} {measurement} {input}. With {measurement}: one message per value, ' +
          'otherwise one message per reading.',
      }),
    eventTopic: Type.String({ minLength: 1, default: 'backhaul/events/{type}', description: 'Topic template for events; placeholders {type} {device}.' }),
    qos: Type.Union([Type.Literal(0), Type.Literal(1)], { default: 1, description: 'Publish QoS: 1 waits for the broker\'s PUBACK.' }),
    retain: Type.Boolean({ default: false, description: 'Publish with the retain flag.' }),
    payload: Type.Union([Type.Literal('json'), Type.Literal('senml')], {
        default: 'json',
        description: 'Payload of per-reading messages: `json` (the reading object) or `senml` (a SenML JSON pack). Events are always JSON.',
      }),
    tls: Type.Optional(TlsClientSchema),
    timeoutMs: Type.Integer({ minimum: 100, default: 10000, description: 'How long to wait for the CONNACK, and for the acknowledgement of a batch.' }),
  },
  { additionalProperties: false },
);

/** CONNACK refusals that may pass by themselves (v3 "server unavailable"; v5 unavailable, busy, rate limit). */
const TRANSIENT_REFUSALS = new Set([3, 136, 137, 159]);

interface Publish {
  readonly topic: string;
  readonly payload: string;
}

export interface MqttPayloadOptions {
  readonly topic: string;
  readonly eventTopic: string;
  readonly payload: 'json' | 'senml';
}

/** The MQTT messages (topic + payload) for one Reading or Event; exported for tests and the docs. */
export function mqttMessages(m: Message, o: MqttPayloadOptions): Publish[] {
  if (m.kind === 'event') {
    return [{ topic: renderTopic(o.eventTopic, { type: m.type, device: m.device }), payload: JSON.stringify(messageToJson(m)) }];
  }
  if (o.topic.includes('{measurement}')) return perValue(m, o.topic);
  const topic = renderTopic(o.topic, { device: m.device, input: m.source.input });
  const body = o.payload === 'senml' ? messageToSenml(m) : messageToJson(m);
  return [{ topic, payload: JSON.stringify(body) }];
}

function perValue(r: Reading, template: string): Publish[] {
  return Object.entries(r.values).map(([measurement, value]) => ({
    topic: renderTopic(template, { device: r.device, measurement, input: r.source.input }),
    payload: JSON.stringify(valueToJson(r, measurement, value)),
  }));
}

function configError(o: MqttPayloadOptions): string | null {
  const t = topicTemplateError(o.topic);
  if (t) return `topic: ${t}`;
  if (/\{type\}/.test(o.topic)) return 'topic: {type} is for eventTopic only';
  const e = topicTemplateError(o.eventTopic);
  if (e) return `eventTopic: ${e}`;
  if (/\{(measurement|input)\}/.test(o.eventTopic)) return 'eventTopic: events have no {measurement} or {input}';
  if (o.payload === 'senml' && o.topic.includes('{measurement}')) {
    return 'payload: senml needs one message per reading, so a topic without {measurement}';
  }
  return null;
}

function payloadOptions(o: Static<typeof Options>): MqttPayloadOptions {
  return {
    topic: o.topic,
    eventTopic: o.eventTopic,
    payload: o.payload,
  };
}

export const mqttSink = defineSink({
  kind: 'sink',
  type: 'mqtt',
  description: 'Publish readings (per value or per reading, JSON or SenML) and events to an MQTT broker.',
  options: Options,
  // Several batches in flight: publishes on one connection keep their order.
  window: 16,
  check(o) {
    const tlsBad = tlsConfigProblems(o.tls, o.url);
    if (tlsBad.length > 0) return tlsBad;
    const bad = configError(payloadOptions(o));
    if (!bad) return [];
    const at = bad.indexOf(': ');
    return [{ path: bad.slice(0, at), message: bad.slice(at + 2) }];
  },
  create(o, ctx) {
    const fmt = payloadOptions(o);
    const { qos, retain, timeoutMs } = o;
    const clientId = o.clientId ?? `backhaul-${ctx.id.replace(/[^\w.-]/g, '_')}-${randomBytes(4).toString('hex')}`;
    const where = safeUrl(o.url);
    const throttle = new LogThrottle(ctx.clock, 60_000);
    let client: MqttClient | undefined;
    /** `fatal`: a refusal no retry will fix (bad credentials); every write throws it. */
    const state: { fatal?: SinkError | undefined; tls?: { failure: TlsFailure; text: string } | undefined } = {};
    const tlsAt = `sinks.${ctx.id}.tls`;
    const tlsThrottle = new LogThrottle(ctx.clock, 60_000);
    const currentFatal = (): SinkError | undefined => state.fatal;
    let wasConnected = false;
    let ready: (() => void) | undefined;

    /**
     * mqtt.js keeps a QoS 1 publish that got no PUBACK (callback pending, packet in its outgoing store) across a lost
     * connection and sends it again after the next CONNACK (build/lib/client.js `_onConnect`; `_flushVolatile` on
     * close fails only subscribes). The runner resends the failed batch from the outbox anyway, so that replay would
     * be a second copy, out of order. Removing each pending publish (mqtt.js's public `removeOutgoingMessage`) fails
     * its callback and empties the store, so only the outbox resends. This client publishes only from `write`. Up to
     * `window` (16) batches are in flight, so what is pending may belong to batches after the failed one, which then
     * fail too: after a failure the runner sends the whole unacknowledged window again, so nothing is lost.
     */
    function dropInFlight(c: MqttClient): void {
      for (const [id, entry] of Object.entries(c.outgoing)) {
        if (entry.cmd === 'publish') c.removeOutgoingMessage(Number(id));
      }
    }

    function onError(c: MqttClient, err: Error & { code?: unknown }): void {
      const failure = tlsFailure(err);
      if (failure) {
        // Not fatal: a renewed certificate or CA file on either side mends it, and the next reconnect reads ours again.
        const text = tlsFailureText(failure, `sink ${ctx.id}`, where);
        state.tls = { failure, text };
        ctx.metrics.tlsFailures.inc({ client: `sinks.${ctx.id}`, reason: failure.reason });
        const more = tlsThrottle.take(failure.reason);
        if (more !== null) ctx.logger.error({ url: where, code: failure.code, reason: failure.reason, suppressed: more }, text);
        return;
      }
      state.tls = undefined; // the last failure is another one now (the broker is down, say): status shows that one
      if (typeof err.code === 'number' && !TRANSIENT_REFUSALS.has(err.code)) {
        const fatal = new SinkError(`${where} refused the connection: ${err.message} (check username, password and clientId)`, false, {
          cause: err,
        });
        state.fatal = fatal;
        ctx.logger.error({ url: where, code: err.code }, fatal.message);
        c.end(true);
        return;
      }
      const more = throttle.take('error');
      if (more !== null) ctx.logger.warn({ url: where, err: errorText(err), suppressed: more }, 'mqtt sink connection error; retrying');
    }

    return {
      async open() {
        const bad = configError(fmt);
        if (bad) throw new SinkError(bad, false);
        state.fatal = undefined;
        const opts: IClientOptions = {
          clientId,
          reconnectPeriod: 1000,
          connectTimeout: timeoutMs,
          queueQoSZero: false,
          reconnectOnConnackError: true,
          resubscribe: false,
          clean: true,
        };
        if (o.username !== undefined) opts.username = o.username;
        if (o.password !== undefined) opts.password = o.password;
        const tls = o.tls;
        if (tls) {
          if (tls.insecure) ctx.logger.warn({ url: where }, 'tls.insecure: the broker\'s certificate is NOT verified; anyone on the path can read and change this traffic');
          try {
            setMqttTls(opts, tlsConnectOptions(tls, (p) => ctx.resolvePath(p), tlsAt));
          } catch (e) {
            throw new SinkError(errorText(e), false, { cause: e, code: 'BH_TLS_FILE' });
          }
        }
        let c: MqttClient;
        try {
          c = connect(o.url, opts);
        } catch (e) {
          throw new SinkError(`cannot connect to ${where}: ${errorText(e)}`, false, { cause: e });
        }
        client = c;
        c.on('error', (err) => onError(c, err));
        // Registered before any write's own 'close' listener, so a failing write sees its publishes already removed.
        c.on('close', () => dropInFlight(c));
        if (tls) {
          // mqtt.js emits 'reconnect' just before it builds the next stream from c.options: read the files again, so a
          // renewed certificate, key or CA takes effect without a restart. An unreadable file keeps the last good ones.
          c.on('reconnect', () => {
            try {
              setMqttTls(c.options, tlsConnectOptions(tls, (p) => ctx.resolvePath(p), tlsAt));
            } catch (e) {
              const more = tlsThrottle.take('file');
              if (more !== null) ctx.logger.error({ err: errorText(e), suppressed: more }, 'cannot read a TLS file again; reconnecting with the last ones read');
            }
          });
        }
        c.on('connect', () => {
          state.tls = undefined;
          wasConnected = true;
          ctx.logger.info({ url: where, clientId }, 'mqtt sink connected');
          ready?.();
        });
        c.on('offline', () => {
          if (!wasConnected) return;
          wasConnected = false;
          ctx.logger.warn({ url: where }, 'mqtt sink lost its connection; reconnecting');
        });
        // Wait for the first attempt. A broker that cannot be reached yet is not fatal: the client keeps trying and
        // writes fail (retryable) until it connects. A refused CONNACK (bad credentials) is fatal.
        await new Promise<void>((resolve) => {
          const done = () => {
            c.off('connect', done);
            c.off('close', done);
            c.off('error', done);
            clearTimeout(timer);
            resolve();
          };
          const timer = setTimeout(done, timeoutMs + 1000);
          c.once('connect', done);
          c.once('close', done);
          c.once('error', done);
        });
        const f = currentFatal(); // set by onError while we waited
        if (f) {
          client = undefined;
          await c.endAsync(true).catch(() => undefined);
          throw f;
        }
        if (!c.connected) ctx.logger.warn({ url: where }, 'mqtt sink cannot reach the broker yet; retrying every second');
      },

      async write(batch) {
        if (state.fatal) throw state.fatal;
        const c = client;
        if (!c) throw new SinkError('the mqtt sink is not open', false);
        if (!c.connected) {
          const t = state.tls;
          if (t) throw new SinkError(t.text, true, { code: t.failure.code });
          throw new SinkError(`not connected to ${where}`, true);
        }
        const msgs = batch.flatMap((m) => mqttMessages(m, fmt));
        if (msgs.length === 0) return;
        const popts: IClientPublishOptions = { qos, retain };
        let onClose: (() => void) | undefined;
        let timer: NodeJS.Timeout | undefined;
        const failure = new Promise<never>((_resolve, reject) => {
          onClose = () => reject(new SinkError(`connection to ${where} lost before the broker acknowledged the batch`, true));
          c.once('close', onClose);
          timer = setTimeout(
            () => reject(new SinkError(`${where} did not acknowledge the batch within ${timeoutMs} ms`, true)),
            timeoutMs,
          );
        });
        try {
          // One write to the socket for the whole batch, not one per message (writev was an eighth of the time).
          const stream = c.stream as Partial<Pick<import('node:stream').Writable, 'cork' | 'uncork'>>;
          stream.cork?.();
          let sent: Promise<unknown>;
          try {
            sent = Promise.all(msgs.map((p) => c.publishAsync(p.topic, p.payload, popts)));
          } finally {
            process.nextTick(() => stream.uncork?.());
          }
          await Promise.race([sent, failure]);
        } catch (e) {
          dropInFlight(c); // a timeout: the outbox retries the batch, so mqtt.js must not replay it after a reconnect
          if (e instanceof SinkError) throw e;
          throw new SinkError(`publishing to ${where} failed: ${errorText(e)}`, true, { cause: e });
        } finally {
          if (onClose) c.off('close', onClose);
          clearTimeout(timer);
        }
      },

      onReady(listener) {
        ready = listener;
      },

      async close() {
        const c = client;
        client = undefined;
        if (!c) return;
        const pending = Object.keys(c.outgoing).length > 0;
        await c.endAsync(pending || !c.connected).catch(() => undefined);
      },
    };
  },
});
