// Health, readiness, sinks, the running config, the audit log, tokens, Prometheus metrics and the OpenAPI document.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { SessionStore } from '../auth.js';
import { ROLES, type TokenStore } from '../tokens.js';
import { ApiError, errorResponses } from '../server.js';
import { AuditView, type ApiDeps } from './deps.js';

const SinkView = Type.Object({
  id: Type.String(),
  type: Type.String(),
  state: Type.String(),
  backlog: Type.Integer(),
  backlogBytes: Type.Integer(),
  oldestAgeMs: Type.Number(),
  delivered: Type.Integer(),
  retries: Type.Integer(),
  dropped: Type.Integer(),
  lastError: Type.Optional(Type.Object({ message: Type.String(), at: Type.Number() })),
});

const TokenView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  role: Type.String(),
  createdAt: Type.Number(),
  lastUsedAt: Type.Optional(Type.Number()),
  revokedAt: Type.Optional(Type.Number()),
});

const AuditQuery = Type.Object(
  {
    device: Type.Optional(Type.String()),
    action: Type.Optional(Type.String()),
    since: Type.Optional(Type.Integer()),
    limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 100 }),
  },
  { additionalProperties: false },
);

export function systemRoutes(deps: ApiDeps, auth: { tokens: TokenStore; sessions: SessionStore }): (app: FastifyInstance) => void {
  return (app) => {
    app.get(
      '/api/v1/health',
      {
        config: { public: true },
        schema: {
          operationId: 'getHealth',
          summary: 'Liveness: the process answers',
          tags: ['system'],
          response: { 200: Type.Object({ status: Type.Literal('ok'), uptimeS: Type.Number() }) },
        },
      },
      () => ({ status: 'ok' as const, uptimeS: Math.round((deps.clock.now() - deps.startedAt) / 1000) }),
    );

    app.get(
      '/api/v1/ready',
      {
        config: { public: true },
        schema: {
          operationId: 'getReady',
          summary: 'Readiness: every input started and the registry is open',
          tags: ['system'],
          response: { 200: Type.Object({ ready: Type.Boolean() }), 503: Type.Object({ ready: Type.Boolean() }) },
        },
      },
      (_req, reply) => {
        const ready = deps.ready();
        reply.code(ready ? 200 : 503);
        return { ready };
      },
    );

    app.get('/api/v1/sinks', { schema: { operationId: 'listSinks', summary: 'Every sink: state, backlog, counters, last error', tags: ['system'], response: { 200: Type.Array(SinkView), ...errorResponses } } }, () => deps.sinks());

    app.get('/api/v1/config', { schema: { operationId: 'getConfig', summary: 'The running config, every secret redacted', tags: ['system'], response: { 200: Type.Unknown(), ...errorResponses } } }, () => deps.config());

    app.get<{ Querystring: Static<typeof AuditQuery> }>(
      '/api/v1/audit',
      { schema: { operationId: 'listAudit', summary: 'The audit log, newest first', tags: ['system'], querystring: AuditQuery, response: { 200: Type.Array(AuditView), ...errorResponses } } },
      (req) => {
        const q = req.query;
        return deps.store.listAudit({
          ...(q.device !== undefined ? { device: q.device } : {}),
          ...(q.action !== undefined ? { action: q.action } : {}),
          ...(q.since !== undefined ? { since: q.since } : {}),
          limit: q.limit,
        });
      },
    );

    app.get('/api/v1/tokens', { config: { role: 'admin' }, schema: { operationId: 'listTokens', summary: 'The API tokens (never their secrets)', tags: ['tokens'], response: { 200: Type.Array(TokenView), ...errorResponses } } }, async () =>
      await auth.tokens.list(),
    );

    const NewTokenBody = Type.Object(
      { name: Type.String({ minLength: 1, maxLength: 64 }), role: Type.Union(ROLES.map((r) => Type.Literal(r))) },
      { additionalProperties: false },
    );
    app.post<{ Body: Static<typeof NewTokenBody> }>(
      '/api/v1/tokens',
      {
        config: { role: 'admin' },
        schema: { operationId: 'createToken', summary: 'A new API token, shown once', tags: ['tokens'], body: NewTokenBody, response: { 201: Type.Intersect([TokenView, Type.Object({ token: Type.String() })]), ...errorResponses } },
      },
      async (req, reply) => {
        const { info, token } = await auth.tokens.create(req.body.name, req.body.role);
        reply.code(201).header('cache-control', 'no-store');
        return { ...info, token };
      },
    );

    app.delete<{ Params: { id: string } }>(
      '/api/v1/tokens/:id',
      {
        config: { role: 'admin' },
        schema: {
          operationId: 'revokeToken',
          summary: 'Revoke an API token and end its sessions',
          tags: ['tokens'],
          params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }),
          response: { 204: Type.Null(), ...errorResponses },
        },
      },
      async (req, reply) => {
        await auth.tokens.revoke(req.params.id);
        auth.sessions.dropToken(req.params.id);
        return reply.code(204).send();
      },
    );

    app.get(
      '/metrics',
      {
        schema: {
          operationId: 'getMetrics',
          summary: 'Prometheus metrics (text exposition format)',
          tags: ['system'],
          response: { 200: { description: 'Prometheus text format 0.0.4', content: { 'text/plain': { schema: { type: 'string' } } } }, ...errorResponses },
        },
      },
      async (_req, reply) => {
      const text = await deps.metrics.registry.metrics();
      return reply.type(deps.metrics.registry.contentType).send(text);
      },
    );

    app.get('/api/v1/openapi.json', { schema: { operationId: 'getOpenApi', summary: 'This OpenAPI document', tags: ['system'] } }, () => {
      const doc = (app as FastifyInstance & { swagger?: () => unknown }).swagger?.();
      if (doc === undefined) throw new ApiError('BH_API_NOT_FOUND', 'the OpenAPI document is not available');
      return doc;
    });
  };
}
