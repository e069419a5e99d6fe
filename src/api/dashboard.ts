// The web dashboard's static files (built by `npm run build:dashboard` into dist/dashboard, sources in dashboard/),
// served at `/`. The files are public (`config: { public: true }`): the page itself holds no data, and every call it
// makes to /api/v1 needs the session cookie. index.html is `no-cache` (a new build is picked up at once) and carries a
// strict Content-Security-Policy; the assets under /assets have content-hashed names and are cached for a year.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { HTML_CSP, type ApiPlugin } from './server.js';

export interface DashboardOptions {
  /** The built dashboard: a folder with index.html and assets/. */
  readonly root: string;
}

/** dist/dashboard of the package: this file runs as dist/src/api/dashboard.js. */
export function dashboardRoot(): string {
  return fileURLToPath(new URL('../../dashboard', import.meta.url));
}

export const DASHBOARD_NOT_BUILT = 'the dashboard is not built: run npm run build:dashboard';

const YEAR_MS = 365 * 24 * 60 * 60 * 1000;

/** The page loads only its own scripts and styles and talks only to its own origin; no one may frame it. */
const CSP = HTML_CSP;

export function dashboardRoutes(o: DashboardOptions): ApiPlugin {
  const root = resolve(o.root);
  const sendOptions = { dotfiles: 'ignore', index: false } as const;

  const index = (_req: FastifyRequest, reply: FastifyReply): FastifyReply => {
    // Looked for on every request, so building the dashboard while Backhaul runs needs no restart.
    if (!existsSync(resolve(root, 'index.html'))) {
      return reply.code(503).header('cache-control', 'no-store').type('text/plain; charset=utf-8').send(DASHBOARD_NOT_BUILT);
    }
    void reply
      .header('cache-control', 'no-cache')
      .header('content-security-policy', CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer');
    return reply.sendFile('index.html', root, { ...sendOptions, cacheControl: false });
  };

  return async (app) => {
    // Its own context, so the `sendFile` decorator stays here; hooks of the context it is added to (the REST API's
    // token check, which lets `config.public` routes pass) still apply.
    await app.register(async (scope) => {
      await scope.register(fastifyStatic, { serve: false });
      const config = { public: true };
      // Static files are no part of the API's description.
      const schema = { hide: true };
      scope.get('/', { config, schema }, index);
      scope.get('/index.html', { config, schema }, index);
      scope.get<{ Params: { '*': string } }>('/assets/*', { config, schema }, (req, reply) => {
        void reply.header('x-content-type-options', 'nosniff');
        return reply.sendFile(`assets/${req.params['*']}`, root, { ...sendOptions, maxAge: YEAR_MS, immutable: true });
      });
    });
  };
}
