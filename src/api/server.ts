// The HTTP API server (Fastify 5): one listener that route plugins are added to (device bootstrap, the REST API, the
// dashboard's files). Every route declares its schemas; every error answers `{error: {code, message, path?}}` with a catalog code,
// whether a handler threw it, schema validation failed, or no route matched.
import { Type, type Static } from '@sinclair/typebox';
import fastifySwagger from '@fastify/swagger';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import { BackhaulError, errorBody, httpStatus, isBackhaulError, joinPath, type BackhaulErrorOptions, type ErrorCode } from '../core/errors.js';
import { checkJsonBounds } from '../core/json.js';
import type { Logger } from '../core/logger.js';
import { listenError, reachableHost } from '../core/listen.js';
import type { Clock } from '../core/clock.js';
import { ServerCertificates, serverOptions, type SecureContextTarget, type TlsServerOptions } from '../core/tls-server.js';

/** Adds routes (and hooks) to the server; each runs in its own Fastify context, so its hooks stay its own. */
export type ApiPlugin = (app: FastifyInstance) => void | Promise<void>;

export interface ApiServerOptions {
  readonly host: string;
  /** 0 picks a free port (see `url`). */
  readonly port: number;
  readonly logger: Logger;
  readonly plugins: readonly ApiPlugin[];
  /** Describe every route in an OpenAPI document (served by the REST API at /api/v1/openapi.json). */
  readonly openapi?: { readonly title: string; readonly version: string };
  /**
   * Proxies (addresses or CIDRs) whose X-Forwarded-For / -Proto / -Host are believed: the client address rate limits
   * key on, and whether the request came over TLS (the session cookie's `Secure`). Default none: headers ignored.
   */
  readonly trustProxy?: readonly string[];
  /** Serve HTTPS with these files (paths absolute); renewed files are served to new connections. */
  readonly tls?: { readonly options: TlsServerOptions; readonly clock: Clock };
}

export const ErrorBody = Type.Object({
  error: Type.Object({
    code: Type.String(),
    message: Type.String(),
    /** The field at fault: `querystring.mac`, `body.location.room`. */
    path: Type.Optional(Type.String()),
  }),
});
export type ErrorBody = Static<typeof ErrorBody>;

/** Response schemas for error answers, to spread into a route's `response`. */
export const errorResponses = { '4xx': ErrorBody, '5xx': ErrorBody } as const;

/** A BackhaulError with the HTTP status (and headers) to answer it with. */
export class ApiError extends BackhaulError {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** The status is the code's (the catalog's), unless `status` says otherwise. */
  constructor(code: ErrorCode, detail: string, opts: BackhaulErrorOptions & { readonly status?: number; readonly headers?: Record<string, string> } = {}) {
    super(code, detail, opts);
    this.status = opts.status ?? httpStatus(code);
    this.headers = opts.headers ?? {};
  }
}

/** For HTML answers: own scripts, styles and API only; never framed (dashboard.ts sets the same on index.html). */
export const HTML_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

interface AjvIssue {
  readonly keyword?: string;
  readonly instancePath?: string;
  readonly message?: string;
  readonly params?: { readonly missingProperty?: unknown };
}

/** The field a schema validation error names (`querystring.mac`) and what is wrong with it. */
function validationIssue(err: FastifyError): { path: string; message: string } {
  const first = (err.validation?.[0] ?? {}) as AjvIssue;
  let path: string = err.validationContext ?? 'request';
  for (const seg of (first.instancePath ?? '').split('/').slice(1)) {
    const key = seg.replace(/~1/g, '/').replace(/~0/g, '~');
    path = joinPath(path, /^\d+$/.test(key) ? Number(key) : key);
  }
  if (first.keyword === 'required' && typeof first.params?.missingProperty === 'string') {
    return { path: joinPath(path, first.params.missingProperty), message: 'is required' };
  }
  return { path, message: first.message ?? err.message };
}

export class ApiServer {
  private app: FastifyInstance | undefined;
  private certs: ServerCertificates | undefined;
  private boundPort: number;

  constructor(private readonly o: ApiServerOptions) {
    this.boundPort = o.port;
  }

  async start(): Promise<void> {
    if (this.app) return;
    const { host, port, logger } = this.o;
    // Plugins see the plain FastifyInstance, not one typed with pino's own Logger.
    const loggerInstance: FastifyBaseLogger = logger;
    let certs: ServerCertificates | undefined;
    if (this.o.tls) {
      certs = new ServerCertificates({ options: this.o.tls.options, resolvePath: (p) => p, path: 'api.tls', logger, clock: this.o.tls.clock });
      certs.start(); // BH_TLS_FILE at api.tls.cert / .key, before anything listens
    }
    // Fastify types an HTTPS instance apart; the routes see the same instance either way.
    const https = certs ? { https: serverOptions(certs.tls) } : {};
    const app = (Fastify as (o: object) => FastifyInstance)({
      ...https,
      // Each request logs through a child of this logger (with its reqId); the built-in per-request lines are off.
      loggerInstance,
      logController: new LogController({ disableRequestLogging: true }),
      return503OnClosing: true,
      // Event streams never go idle: stopping must not wait for their clients to leave.
      forceCloseConnections: true,
      ...(this.o.trustProxy !== undefined && this.o.trustProxy.length > 0 ? { trustProxy: [...this.o.trustProxy] } : {}),
    });
    // JSON bodies: nesting bounded first (one linear scan, src/core/json.ts), then Fastify's own parser, which also
    // refuses `__proto__` and `constructor` poisoning.
    const parseJson = app.getDefaultJsonParser('error', 'error');
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
      const text = String(body); // parseAs: 'string'
      try {
        checkJsonBounds(text, 'the body');
      } catch (e) {
        done(isBackhaulError(e) ? new ApiError(e.code, e.detail, { path: 'body', status: 400 }) : (e as Error), undefined);
        return;
      }
      void parseJson(req, text, done);
    });
    if (this.o.openapi) {
      // At the root, before the plugins, so it sees every route they add.
      await app.register(fastifySwagger, {
        openapi: {
          info: { title: this.o.openapi.title, version: this.o.openapi.version },
          components: {
            securitySchemes: {
              bearer: { type: 'http', scheme: 'bearer', description: 'An API token, bh_<id>_<secret>' },
              session: { type: 'apiKey', in: 'cookie', name: 'bh_session', description: 'The dashboard session (POST /api/v1/session)' },
            },
          },
          security: [{ bearer: [] }, { session: [] }],
        },
        // Routes that need no token (health, readiness, session login and logout, device bootstrap) say so.
        transform: ({ schema, url, route }) => {
          const isPublic = route.config?.public === true;
          return { schema: isPublic ? { ...schema, security: [] } : schema, url };
        },
      });
    }
    app.addHook('onSend', (_req, reply, payload, done) => {
      // Every answer: no content sniffing. HTML (the dashboard, any error page a plugin serves): a strict
      // Content-Security-Policy unless the route set its own, and no framing.
      void reply.header('x-content-type-options', 'nosniff');
      const type = reply.getHeader('content-type');
      if (typeof type === 'string' && /^text\/html\b/i.test(type)) {
        if (!reply.hasHeader('content-security-policy')) void reply.header('content-security-policy', HTML_CSP);
        void reply.header('x-frame-options', 'DENY');
        if (!reply.hasHeader('referrer-policy')) void reply.header('referrer-policy', 'no-referrer');
      }
      done(null, payload);
    });
    app.addHook('onResponse', (req, reply, done) => {
      // The path only: a query string may one day carry something that must not reach the log.
      req.log.debug({ method: req.method, path: req.url.split('?')[0], status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'api request');
      done();
    });
    app.setErrorHandler((err: FastifyError, req, reply) => {
      if (err.validation) {
        const { path, message } = validationIssue(err);
        return reply.code(400).send(errorBody('BH_API_REQUEST', message, path));
      }
      if (err instanceof ApiError) {
        return reply.code(err.status).headers(err.headers).send(errorBody(err.code, err.detail, err.path));
      }
      if (isBackhaulError(err)) {
        // A coded error thrown by a store or a check answers with its code's status; a 5xx other than "unavailable"
        // is a fault inside Backhaul, logged, and answered without its detail.
        const status = httpStatus(err.code);
        if (status < 500 || status === 503) return reply.code(status).send(errorBody(err.code, err.detail, err.path));
      } else {
        // Fastify's own refusals (bad JSON body, body too large, wrong media type) keep their status.
        const status = err.statusCode ?? 500;
        if (status >= 400 && status < 500) return reply.code(status).send(errorBody('BH_API_REQUEST', err.message));
      }
      req.log.error({ err }, 'api request failed');
      return reply.code(500).send(errorBody('BH_API_INTERNAL', 'internal error; the log says why'));
    });
    app.setNotFoundHandler((req, reply) => {
      void reply.code(404).send(errorBody('BH_API_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`));
    });
    for (const plugin of this.o.plugins) {
      void app.register(async (child) => {
        await plugin(child);
      });
    }
    try {
      // A plugin that fails to load fails here, with its own error, not as a listen error.
      await app.ready();
    } catch (err) {
      certs?.stop();
      await app.close().catch(() => undefined);
      throw err;
    }
    try {
      await app.listen({ host, port });
    } catch (err) {
      certs?.stop();
      await app.close().catch(() => undefined);
      throw apiListenError(err, host, port);
    }
    if (certs) {
      certs.attach(app.server as unknown as SecureContextTarget);
      // A failed handshake (an old TLS version, a client that does not trust the certificate) is the client's problem.
      app.server.on('tlsClientError', (err: Error) => logger.debug({ err: err.message }, 'TLS handshake failed'));
    }
    this.certs = certs;
    const addr = app.server.address();
    this.boundPort = typeof addr === 'object' && addr ? addr.port : port;
    this.app = app;
    logger.info({ url: this.url }, 'API listening');
  }

  async stop(): Promise<void> {
    const app = this.app;
    this.app = undefined;
    this.certs?.stop();
    this.certs = undefined;
    if (app) await app.close();
  }

  /** Re-read the certificate files now (SIGHUP); undefined without TLS. See ServerCertificates.reload. */
  reloadCertificates(): boolean | undefined {
    return this.certs?.reload();
  }

  /** `http(s)://host:port`, with the port actually bound once started. */
  get url(): string {
    return `${this.o.tls ? 'https' : 'http'}://${reachableHost(this.o.host)}:${this.boundPort}`;
  }

  info(): { url: string } {
    return { url: this.url };
  }
}

function apiListenError(err: unknown, host: string, port: number): BackhaulError {
  return listenError(err, host, port, 'api', 'api.port');
}
