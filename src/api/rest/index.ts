// The REST API (docs/api.md): one plugin context with the token check (auth.ts), the audit of mutating calls, and
// the routes. The device bootstrap routes and the dashboard's static files are separate plugins, outside it.
import type { Logger } from '../../core/logger.js';
import { restPlugin, type AuthOptions } from '../auth.js';
import type { ApiPlugin } from '../server.js';
import { alarmRoutes } from './alarms.js';
import { registerAudit } from './audit.js';
import { dataRoutes } from './data.js';
import type { ApiDeps } from './deps.js';
import { deviceRoutes } from './devices.js';
import { systemRoutes } from './system.js';

export type { ApiDeps } from './deps.js';

export function restApi(deps: ApiDeps, auth: AuthOptions, logger: Logger): ApiPlugin {
  return restPlugin(
    auth,
    // Logging in and out is not a change to audit; every other POST, PATCH and DELETE is.
    (app) => registerAudit(app, deps.store, logger, ['/api/v1/session']),
    systemRoutes(deps, auth),
    deviceRoutes(deps),
    dataRoutes(deps),
    alarmRoutes(deps),
  );
}
