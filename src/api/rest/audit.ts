// Every mutating API call (POST, PATCH, DELETE) is audited: who (`api:<token name>`), what (method and route), when,
// on which device, and how it ended (succeeded, refused for its role, or failed). Handlers that change the registry
// also write their own, more specific entry (`device.set`, `command.reboot`), as the CLI does.
import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify';
import { errorText, isBackhaulError } from '../../core/errors.js';
import type { DeviceStore } from '../../devices/store/index.js';
import type { Logger } from '../../core/logger.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The code of the error the request ended with, for the audit entry. */
    auditError?: string;
  }
}

/** Who is calling, as the audit log names them. */
export function actorOf(req: FastifyRequest): string {
  return req.principal ? `api:${req.principal.name}` : 'api:anonymous';
}

const MUTATING = new Set(['POST', 'PATCH', 'PUT', 'DELETE']);

export function registerAudit(app: FastifyInstance, store: DeviceStore, logger: Logger, skip: readonly string[] = []): void {
  app.addHook('onError', (req: FastifyRequest, _reply, err: FastifyError, done) => {
    req.auditError = isBackhaulError(err) ? err.code : (err.code ?? 'error');
    done();
  });
  app.addHook('onResponse', (req, reply, done) => {
    const url = req.routeOptions.url;
    // Requests without a valid token are refused before anything happens; they are counted in the log, not the audit
    // (anyone could fill the audit log with them).
    if (!MUTATING.has(req.method) || url === undefined || skip.includes(url) || !req.principal) {
      done();
      return;
    }
    const params = (req.params ?? {}) as Record<string, unknown>;
    const device = typeof params['id'] === 'string' && url.startsWith('/api/v1/devices/') ? params['id'] : undefined;
    const ok = reply.statusCode < 400;
    store
      .appendAudit({
        actor: actorOf(req),
        action: `api ${req.method} ${url}`,
        ...(device !== undefined ? { device } : {}),
        detail: { status: reply.statusCode, requestId: req.id },
        result: ok ? 'ok' : `error: ${req.auditError ?? String(reply.statusCode)}`,
      })
      .catch((e: unknown) => logger.warn({ err: errorText(e) }, 'could not audit an API call'))
      .finally(done);
  });
}
