// Several real hubs on one PostgreSQL store (registry and API tokens): each with its own data folder and config file
// (so the CLI can be pointed at it with -c), its embedded broker on a free port, started in order (the first takes
// the leases). Stopped again by the test's teardown, in reverse order.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfigFile } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { tempDir } from './context.js';
import { POSTGRES_URL } from './postgres.js';
import { freePort } from './servers.js';

export interface ClusterNode {
  readonly hub: Hub;
  /** The embedded broker's port. */
  readonly port: number;
  /** The config file (`backhaul … -c file`). */
  readonly file: string;
  readonly dir: string;
  /** The first admin token, when this hub made it (only the first on an empty token table does). */
  readonly admin: string | undefined;
}

/**
 * `n` hubs on the store schema `schema`; `config` gives the rest of each one's config (its broker input is added
 * unless it names `inputs`).
 */
export async function pgCluster(later: (fn: () => unknown) => void, schema: string, n: number, config: (port: number) => Record<string, unknown>): Promise<ClusterNode[]> {
  const nodes: ClusterNode[] = [];
  for (let i = 0; i < n; i++) {
    const d = tempDir();
    later(() => d.cleanup());
    const port = await freePort();
    const file = join(d.path, 'backhaul.json');
    writeFileSync(
      file,
      JSON.stringify({
        data: 'data',
        store: { type: 'postgres', url: POSTGRES_URL, schema },
        inputs: { devices: { type: 'broker', host: '127.0.0.1', port, decoder: 'json' } },
        ...config(port),
      }),
    );
    let admin: string | undefined;
    const hub = new Hub({ config: loadConfigFile(file, { registry: builtinRegistry() }), logger: silentLogger(), onFirstAdminToken: (tok) => (admin = tok) });
    await hub.start();
    later(() => hub.stop());
    nodes.push({ hub, port, file, dir: d.path, get admin() { return admin; } });
  }
  return nodes;
}
