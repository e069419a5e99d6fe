// nats: publish readings and events to a NATS JetStream stream, the central bus of a city's tier. A write resolves
// once the stream acknowledged every message (its PubAck), so the outbox removes only what the stream stored. Each
// message carries `Nats-Msg-Id`, a hash of its subject and body: a batch delivered again after a crash or a lost
// acknowledgement is stored once (within the stream's duplicate window, 2 min by default). One message per reading,
// or per value when the subject template has {measurement}. A subject no stream captures is a retryable error that
// says so, not a loss: the outbox keeps the readings until the stream exists. TLS (`tls`, or a `tls://` server): the
// `tls` files are read at each open and again before each of nats.js's reconnect attempts, and a refused certificate
// at open is a retryable BH_TLS_VERIFY (or BH_TLS_HANDSHAKE) error naming the reason.
import { createHash } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { connect, type ConnectionOptions, type JetStreamClient, type NatsConnection, type TlsOptions } from 'nats';
import { defineSink, SinkError } from '../../core/driver.js';
import { errorText } from '../../core/errors.js';
import type { Message, Reading } from '../../core/types.js';
import { LogThrottle } from '../../core/throttle.js';
import { tlsConfigProblems, TlsClientSchema, tlsConnectOptions, tlsFailure, tlsFailureText, type TlsClientConfig, type TlsConnectOptions } from '../../core/tls-client.js';
import { messageToJson, messageToSenml, valueToJson } from '../format.js';

type SubjectField = 'device' | 'measurement' | 'input' | 'type';

const Options = Type.Object(
  {
    servers: Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })], {
      default: 'nats://127.0.0.1:4222',
      description: 'NATS server(s), `nats://host:4222` (several: the client picks one and fails over). `tls://host:4222` insists on TLS, as `tls` does.',
    }),
    user: Type.Optional(Type.String({ minLength: 1, description: 'User name.' })),
    password: Type.Optional(Type.String({ minLength: 1, secret: true, description: 'Its password; use `{"secret": NAME}`.' })),
    token: Type.Optional(Type.String({ minLength: 1, secret: true, description: 'An auth token instead of user and password; use `{"secret": NAME}`.' })),
    subject: Type.String({
      minLength: 1,
      default: 'backhaul.readings.{device}',
      description:
        'Subject template for readings; placeholders {device} {measurement} {input}. With {measurement}: one message per value, otherwise one per reading. ' +
        'A `.` or a wildcard inside a value becomes `_`, so each placeholder stays one token.',
    }),
    eventSubject: Type.String({ minLength: 1, default: 'backhaul.events.{type}', description: 'Subject template for events; placeholders {type} {device}.' }),
    payload: Type.Union([Type.Literal('json'), Type.Literal('senml')], {
      default: 'json',
      description: 'Body of per-reading messages: `json` (the reading object) or `senml` (a SenML JSON pack). Events are always JSON.',
    }),
    tls: Type.Optional(TlsClientSchema),
    timeoutMs: Type.Integer({ minimum: 100, default: 10000, description: 'How long to wait for the first connection, and for the stream to acknowledge a message.' }),
  },
  { additionalProperties: false },
);
type Options = Static<typeof Options>;

export interface NatsMessage {
  readonly subject: string;
  readonly body: string;
  /** Nats-Msg-Id: the same message always gets the same id, so the stream stores a redelivered one once. */
  readonly id: string;
}

/** A value as one subject token: no separators, no wildcards, no white space. */
function token(v: string | undefined): string {
  if (v === undefined || v === '') return '_';
  return v.replace(/[.*>\s]/g, '_');
}

function render(template: string, fields: Partial<Record<SubjectField, string>>): string {
  return template.replace(/\{(device|measurement|input|type)\}/g, (_m, key: SubjectField) => token(fields[key]));
}

function msg(subject: string, body: string): NatsMessage {
  return { subject, body, id: createHash('sha256').update(subject).update('\n').update(body).digest('hex').slice(0, 32) };
}

/** The NATS messages of one Reading or Event; exported for tests and the docs. */
export function natsMessages(m: Message, o: Pick<Options, 'subject' | 'eventSubject' | 'payload'>): NatsMessage[] {
  if (m.kind === 'event') return [msg(render(o.eventSubject, { type: m.type, device: m.device }), JSON.stringify(messageToJson(m)))];
  if (o.subject.includes('{measurement}')) return perValue(m, o.subject);
  const body = o.payload === 'senml' ? messageToSenml(m) : messageToJson(m);
  return [msg(render(o.subject, { device: m.device, input: m.source.input }), JSON.stringify(body))];
}

function perValue(r: Reading, template: string): NatsMessage[] {
  return Object.entries(r.values).map(([measurement, value]) => msg(render(template, { device: r.device, measurement, input: r.source.input }), JSON.stringify(valueToJson(r, measurement, value))));
}

/** Why a subject template cannot be published to, or null. */
export function subjectTemplateError(template: string, allowed: readonly SubjectField[]): string | null {
  const unknown = [...template.matchAll(/\{([^{}]*)\}/g)].map((m) => m[1] ?? '').filter((k) => !(allowed as readonly string[]).includes(k));
  if (unknown.length > 0) return `unknown placeholder {${unknown[0]}} (known here: ${allowed.map((p) => `{${p}}`).join(' ')})`;
  const literal = template.replace(/\{(device|measurement|input|type)\}/g, 'x');
  if (/[*>\s]/.test(literal)) return 'a subject to publish to cannot hold the wildcards * or >, nor white space';
  if (literal.split('.').some((t) => t === '')) return 'a subject\'s tokens cannot be empty (no leading, trailing or double `.`)';
  return null;
}

function problems(o: Options): Array<{ path: string; message: string }> {
  const out: Array<{ path: string; message: string }> = [];
  const s = subjectTemplateError(o.subject, ['device', 'measurement', 'input']);
  if (s) out.push({ path: 'subject', message: s });
  const e = subjectTemplateError(o.eventSubject, ['type', 'device']);
  if (e) out.push({ path: 'eventSubject', message: e });
  if (o.payload === 'senml' && o.subject.includes('{measurement}')) out.push({ path: 'payload', message: 'senml needs one message per reading, so a subject without {measurement}' });
  if (o.token !== undefined && (o.user !== undefined || o.password !== undefined)) out.push({ path: 'token', message: 'give a token or a user and password, not both' });
  // No scheme to check: a NATS server offers TLS in its INFO on any connection, so `tls` with nats:// is right.
  out.push(...tlsConfigProblems(o.tls, undefined));
  return out;
}

/** The TLS a connection needs: `tls` as given, the defaults for a `tls://` server without it, or none. */
function tlsConfig(o: Options, servers: readonly string[]): TlsClientConfig | undefined {
  if (o.tls) return o.tls;
  return servers.some((s) => /^tls:\/\//i.test(s.trim())) ? { insecure: false, minVersion: 'TLSv1.2' } : undefined;
}

/**
 * nats.js's `tls` object: its TlsOptions (PEM text in ca, cert, key) and node:tls's servername, rejectUnauthorized and
 * minVersion, which nats.js passes on to tls.connect as they are. Given any object, nats.js refuses a server without TLS.
 */
type NatsTls = TlsOptions & Partial<Pick<TlsConnectOptions, 'servername' | 'minVersion'>> & { rejectUnauthorized?: boolean };

/** Put freshly read TLS options into the object nats.js reads at every (re)connect (the same object, not a copy). */
function setNatsTls(target: NatsTls, t: TlsConnectOptions): void {
  const next: NatsTls = {
    rejectUnauthorized: t.rejectUnauthorized,
    ...(t.ca !== undefined ? { ca: t.ca.toString('utf8') } : {}),
    ...(t.cert !== undefined ? { cert: t.cert.toString('utf8') } : {}),
    ...(t.key !== undefined ? { key: typeof t.key === 'string' ? t.key : t.key.toString('utf8') } : {}),
    ...(t.servername !== undefined ? { servername: t.servername } : {}),
    ...(t.minVersion !== undefined ? { minVersion: t.minVersion } : {}),
  };
  for (const k of Object.keys(target) as (keyof NatsTls)[]) delete target[k];
  Object.assign(target, next);
}

/** The JetStream error a failed publish gave, as what a person should do about it. */
function publishFailure(e: unknown, subject: string): SinkError {
  const text = errorText(e);
  const code = (e as { code?: unknown }).code;
  // No stream listens on the subject: the server answers "no responders" (503).
  if (code === '503' || /no responders/i.test(text)) {
    return new SinkError(`no JetStream stream captures subject ${subject}: add one (nats stream add) or change the subject`, true, { cause: e });
  }
  if (code === 'TIMEOUT' || /timeout/i.test(text)) return new SinkError(`the stream did not acknowledge ${subject} in time`, true, { cause: e });
  return new SinkError(`publishing to ${subject} failed: ${text}`, true, { cause: e });
}

export const natsSink = defineSink({
  kind: 'sink',
  type: 'nats',
  description: 'Publish readings and events to a NATS JetStream stream, each acknowledged by the stream and deduplicated by Nats-Msg-Id.',
  options: Options,
  // Publishes on one connection keep their order; several batches may await their acknowledgements.
  window: 8,
  check(o) {
    return problems(o);
  },
  create(o, ctx) {
    const servers = Array.isArray(o.servers) ? o.servers : [o.servers];
    const throttle = new LogThrottle(ctx.clock, 60_000);
    const tls = tlsConfig(o, servers);
    const tlsAt = `sinks.${ctx.id}.tls`;
    const tlsThrottle = new LogThrottle(ctx.clock, 60_000);
    const where = servers.join(', ');
    let nc: NatsConnection | undefined;
    let js: JetStreamClient | undefined;
    let ready: (() => void) | undefined;
    /** False between a disconnect and the reconnect: drain() then only waits (and leaves nats.js's reconnect loop running). */
    let linked = false;

    const watch = async (c: NatsConnection): Promise<void> => {
      for await (const s of c.status()) {
        const type: string = s.type;
        if (type === 'reconnect') {
          linked = true;
          ctx.logger.info({ servers }, 'nats sink reconnected');
          ready?.();
        } else if (type === 'disconnect') {
          linked = false;
          ctx.logger.warn({ servers }, 'nats sink lost its connection; reconnecting');
        } else if (type === 'error') {
          const more = throttle.take('error');
          if (more !== null) ctx.logger.warn({ servers, err: errorText(s.data), suppressed: more }, 'nats sink error');
        }
      }
    };

    return {
      async open() {
        const bad = problems(o)[0];
        if (bad) throw new SinkError(`${bad.path}: ${bad.message}`, false);
        const t = tls ? { target: {} as NatsTls, read: () => tlsConnectOptions(tls, (p) => ctx.resolvePath(p), tlsAt) } : undefined;
        if (t) {
          if (tls?.insecure) ctx.logger.warn({ servers }, 'tls.insecure: the NATS server\'s certificate is NOT verified; anyone on the path can read and change this traffic');
          try {
            // Read now, at every open: a renewed CA, certificate or key file takes effect when the runner opens again.
            setNatsTls(t.target, t.read());
          } catch (e) {
            throw new SinkError(errorText(e), false, { cause: e, code: 'BH_TLS_FILE' });
          }
        }
        const opts: ConnectionOptions = {
          servers,
          name: `backhaul-${ctx.id}`,
          timeout: o.timeoutMs,
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 1000,
          // A server not up at open is an outage like any other: open fails (retryable) and the runner tries again.
          waitOnFirstConnect: false,
          ...(o.user !== undefined ? { user: o.user } : {}),
          ...(o.password !== undefined ? { pass: o.password } : {}),
          ...(o.token !== undefined ? { token: o.token } : {}),
          ...(t !== undefined
            ? {
                tls: t.target,
                // nats.js calls this (synchronously) before each attempt to connect, first or re-, and reads
                // `t.target` for the handshake after it: the files are read again here, so a renewed one needs no
                // restart. It returns what nats.js's default would: reconnectTimeWait plus its TLS jitter (up to 1 s).
                reconnectDelayHandler: () => {
                  try {
                    setNatsTls(t.target, t.read());
                  } catch (e) {
                    const more = tlsThrottle.take('file');
                    if (more !== null) ctx.logger.error({ err: errorText(e), suppressed: more }, 'cannot read a TLS file again; reconnecting with the last ones read');
                  }
                  return 1000 + Math.floor(Math.random() * 1001);
                },
              }
            : {}),
        };
        let c: NatsConnection;
        try {
          c = await connect(opts);
        } catch (e) {
          const failure = tlsFailure(e);
          if (failure) {
            // Not fatal: a renewed certificate or CA file on either side mends it, and the next open reads ours again.
            const text = tlsFailureText(failure, `sink ${ctx.id}`, where);
            ctx.metrics.tlsFailures.inc({ client: `sinks.${ctx.id}`, reason: failure.reason });
            const more = tlsThrottle.take(failure.reason);
            if (more !== null) ctx.logger.error({ servers, code: failure.code, reason: failure.reason, suppressed: more }, text);
            throw new SinkError(text, true, { cause: e, code: failure.code });
          }
          if (tls && (e as { code?: unknown }).code === 'SERVER_OPT_NA' && errorText(e) === 'tls') {
            throw new SinkError(`cannot connect to ${where}: tls: the server offers no TLS (give it TLS, or leave out tls and tls://)`, true, { cause: e });
          }
          const text = errorText(e);
          // Refused credentials do not pass by themselves.
          const fatal = /authorization|authentication/i.test(text);
          throw new SinkError(`cannot connect to ${where}: ${text}`, !fatal, { cause: e });
        }
        nc = c;
        linked = true;
        js = c.jetstream({ timeout: o.timeoutMs });
        // Ends with the connection; it only logs and tells the runner of reconnects.
        void watch(c).catch((e: unknown) => ctx.logger.debug({ err: errorText(e) }, 'nats status stream ended'));
        ctx.logger.info({ servers, server: c.getServer() }, 'nats sink connected');
      },

      async write(batch) {
        const c = nc;
        const j = js;
        if (!c || !j) throw new SinkError('the nats sink is not open', false);
        if (c.isClosed()) throw new SinkError(`the connection to ${servers.join(', ')} is closed`, true);
        const msgs = batch.flatMap((m) => natsMessages(m, o));
        // All published at once (pipelined on the connection), each awaited: the batch is done when the stream
        // acknowledged every one. A duplicate acknowledgement (same Nats-Msg-Id) counts as stored.
        const acks = msgs.map((m) => j.publish(m.subject, new TextEncoder().encode(m.body), { msgID: m.id, timeout: o.timeoutMs }).then(() => undefined, (e: unknown) => publishFailure(e, m.subject)));
        const results = await Promise.all(acks);
        const failed = results.find((r) => r !== undefined);
        if (failed) throw failed;
      },

      onReady(listener) {
        ready = listener;
      },

      async close() {
        const c = nc;
        nc = undefined;
        js = undefined;
        if (!c) return;
        // drain() flushes what is published and closes; cut off from the server there is nothing to flush, and a drain
        // begun just before the link dropped would wait for a reconnect that may never come: it gets timeoutMs, then
        // close() ends the connection and its reconnect loop whatever state it is in. The status iterator ends with it.
        if (linked) {
          let timer: NodeJS.Timeout | undefined;
          const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, o.timeoutMs)));
          await Promise.race([c.drain().catch(() => undefined), waited]);
          clearTimeout(timer);
        }
        if (!c.isClosed()) await c.close();
      },
    };
  },
});
