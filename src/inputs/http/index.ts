// HTTP ingest (Fastify 5): POST a JSON, SenML JSON or SenML CBOR body to one path. The body reaches the decoder
// untouched (text for the JSON types, bytes for CBOR); the reply waits for `ctx.emitStrict`, so 202 means the
// readings are durably queued, and a decode error comes back as 400 with its code and path.
import { Type } from '@sinclair/typebox';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import { defineInput, type Input } from '../../core/driver.js';
import { errorBody, type ErrorBody, errorText, httpStatus, isBackhaulError } from '../../core/errors.js';
import { LogThrottle } from '../../core/throttle.js';
import type { Frame } from '../../core/types.js';
import { listenError, reachableHost } from '../../core/listen.js';
import { InFlight } from '../../core/inflight.js';
import { ServerCertificates, serverOptions, type SecureContextTarget, TlsServerOptions } from '../../core/tls-server.js';
import { bytes } from '../util.js';

export const HTTP_CONTENT_TYPES = ['application/json', 'application/senml+json', 'application/senml+cbor', 'application/cbor'] as const;
const TEXT_TYPES = new Set<string>(['application/json', 'application/senml+json']);

const options = Type.Object(
  {
    host: Type.String({ description: 'Address to listen on; `127.0.0.1` for this machine only.', default: '0.0.0.0' }),
    port: Type.Integer({ description: 'TCP port; 0 picks any free port (see the logged url).', minimum: 0, maximum: 65535, default: 8080 }),
    path: Type.String({ description: 'The one path that takes POSTs.', pattern: '^/', default: '/ingest' }),
    bodyLimit: Type.Integer({ description: 'Largest body accepted, in bytes; larger gets 413.', minimum: 1, default: 1048576 }),
    acceptTimeoutMs: Type.Integer({
      description: 'Longest wait for the readings to be queued (a full outbox with overflow `block`); then 503 with Retry-After.',
      minimum: 100,
      default: 10000,
    }),
    tls: Type.Optional(TlsServerOptions),
  },
  { additionalProperties: false },
);

export const httpInput = defineInput({
  kind: 'input',
  type: 'http',
  description: 'HTTP ingest: POST JSON, SenML JSON or SenML CBOR to one path; 202 once queued, 400 with the decode error.',
  options,
  defaultDecoder: 'senml',
  create(opts, ctx): Input {
    const { host, port, path, bodyLimit } = opts;
    const log = ctx.logger;
    const throttle = new LogThrottle(ctx.clock);
    const inflight = new InFlight();
    let app: FastifyInstance | undefined;
    let certs: ServerCertificates | undefined;
    let boundPort = port;
    const scheme = opts.tls ? 'https' : 'http';
    let accepting = false;

    const warn = (key: string, fields: Record<string, unknown>, msg: string) => {
      const suppressed = throttle.take(key);
      if (suppressed !== null) log.warn({ ...fields, ...(suppressed > 0 ? { suppressed } : {}) }, msg);
    };

    const acceptTimeoutMs = opts.acceptTimeoutMs;
    const reject = (reply: FastifyReply, status: number, body: ErrorBody) => {
      if (status === 503) void reply.header('retry-after', '5');
      return reply.code(status).type('application/json').send(body);
    };

    return {
      async start() {
        let c: ServerCertificates | undefined;
        if (opts.tls) {
          c = new ServerCertificates({
            options: opts.tls,
            resolvePath: (p) => ctx.resolvePath(p),
            path: `inputs.${ctx.id}.tls`,
            logger: log,
            clock: ctx.clock,
            onError: () => ctx.metrics.inputErrors.inc({ input: ctx.id }),
          });
          c.start(); // BH_TLS_FILE naming the option at fault, before anything listens
        }
        // Fastify types an HTTPS instance apart; the handlers below are the same for both.
        const https = c ? { https: serverOptions(c.tls) } : {};
        const f = (Fastify as (o: object) => FastifyInstance)({ ...https, logger: false, bodyLimit, return503OnClosing: true });
        f.removeAllContentTypeParsers();
        f.addContentTypeParser([...HTTP_CONTENT_TYPES], { parseAs: 'buffer', bodyLimit }, (_req, body, done) => {
          done(null, body);
        });
        f.setErrorHandler((err: FastifyError, req, reply) => {
          if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || err.code === 'FST_ERR_CTP_INVALID_TYPE') {
            const ct = req.headers['content-type'];
            return reject(
              reply,
              415,
              errorBody('BH_HTTP_MEDIA_TYPE', `Content-Type ${ct ? JSON.stringify(ct) : '(none)'} is not taken here; use one of ${HTTP_CONTENT_TYPES.join(', ')}`),
            );
          }
          if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
            return reject(reply, 413, errorBody('BH_HTTP_BODY', `body larger than bodyLimit (${bodyLimit} bytes)`));
          }
          const status = err.statusCode ?? 500;
          if (status >= 400 && status < 500) return reject(reply, status, errorBody('BH_HTTP_BODY', err.message));
          ctx.metrics.inputErrors.inc({ input: ctx.id });
          warn('internal', { err: err.message }, 'HTTP ingest request failed');
          return reject(reply, 500, errorBody('BH_INPUT_FAILED', 'internal error'));
        });

        f.post(path, async (req, reply) => {
          if (!accepting) return reject(reply, 503, errorBody('BH_INPUT_FAILED', 'input is stopping'));
          const body = req.body;
          const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
          if (!(body instanceof Uint8Array) || !contentType) {
            return reject(reply, 415, errorBody('BH_HTTP_MEDIA_TYPE', `a body with a Content-Type is required; use one of ${HTTP_CONTENT_TYPES.join(', ')}`));
          }
          let payload: string | Uint8Array;
          if (TEXT_TYPES.has(contentType)) {
            try {
              payload = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(body);
            } catch {
              return reject(reply, 400, errorBody('BH_HTTP_BODY', 'body is not valid UTF-8 text'));
            }
          } else {
            payload = bytes(body);
          }
          const frame: Frame = {
            input: ctx.id,
            payload,
            receivedAt: ctx.clock.now(),
            topic: path,
            contentType,
            identity: { remoteAddress: req.socket.remoteAddress ?? req.ip },
          };
          let timer: NodeJS.Timeout | undefined;
          const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), acceptTimeoutMs)));
          try {
            const accepted = await Promise.race([inflight.track(ctx.emitStrict(frame)), timedOut]);
            if (accepted === 'timeout') {
              // The readings may still be queued later; the client's retry then duplicates them (at least once).
              ctx.metrics.inputErrors.inc({ input: ctx.id });
              warn('timeout', {}, `readings not queued within ${acceptTimeoutMs} ms (outbox full?); answered 503`);
              return reject(reply, 503, errorBody('BH_INPUT_FAILED', 'Backhaul cannot queue readings now (an outbox is full); retry later'));
            }
            return reply.code(202).send({ accepted });
          } catch (err) {
            if (isBackhaulError(err)) return reject(reply, httpStatus(err.code), errorBody(err.code, err.detail, err.path));
            ctx.metrics.inputErrors.inc({ input: ctx.id });
            warn('emit', { err: errorText(err) }, 'could not hand a request to the data path; answered 503');
            return reject(reply, 503, errorBody('BH_INPUT_FAILED', 'the data path cannot take readings now; retry later'));
          } finally {
            clearTimeout(timer);
          }
        });

        try {
          await f.listen({ host, port });
        } catch (err) {
          c?.stop();
          await f.close().catch(() => undefined);
          throw listenError(err, host, port, ctx.id);
        }
        if (c) {
          c.attach(f.server as unknown as SecureContextTarget);
          f.server.on('tlsClientError', (err: Error) => {
            ctx.metrics.inputErrors.inc({ input: ctx.id });
            warn('tls', { err: err.message }, 'TLS handshake failed');
          });
        }
        certs = c;
        f.server.on('error', (err) => {
          ctx.metrics.inputErrors.inc({ input: ctx.id });
          warn('server', { err: err.message }, 'HTTP listener error');
        });
        const addr = f.server.address();
        boundPort = typeof addr === 'object' && addr ? addr.port : port;
        app = f;
        accepting = true;
        log.info({ url: `${scheme}://${reachableHost(host)}:${boundPort}${path}` }, 'HTTP ingest listening');
      },

      async stop() {
        accepting = false;
        const f = app;
        app = undefined;
        certs?.stop();
        certs = undefined;
        await inflight.settle();
        if (f) await f.close();
      },

      info() {
        return { url: `${scheme}://${reachableHost(host)}:${boundPort}${path}` };
      },

      reloadCertificates() {
        return certs?.reload();
      },
    };
  },
});

