// A private Mosquitto 2 with the dynamic-security plugin, on a free port, initialised by `mosquitto_ctrl dynsec init`
// (Debian's `mosquitto` and `mosquitto-clients` packages). Skips with a message naming what is missing, or fails in CI
// (BACKHAUL_REQUIRE_SERVICES=1), like services.ts.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import mqtt from 'mqtt';
import { tempDir } from './context.js';
import { freePort } from './servers.js';
import { requireServices, tcpReachable } from './services.js';
import { until } from './until.js';

export const MOSQUITTO_BIN = '/usr/sbin/mosquitto';
export const MOSQUITTO_CTRL = '/usr/bin/mosquitto_ctrl';
export const DYNSEC_PLUGIN = '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so';

export function dynsecSkip(): string | false {
  for (const f of [MOSQUITTO_BIN, MOSQUITTO_CTRL, DYNSEC_PLUGIN]) {
    try {
      accessSync(f, constants.R_OK);
    } catch {
      if (requireServices) throw new Error(`${f} is required (BACKHAUL_REQUIRE_SERVICES=1) but is not there`);
      return `needs Mosquitto 2 with its dynamic-security plugin (${f}; apt-get install -y mosquitto mosquitto-clients)`;
    }
  }
  return false;
}

export interface DynsecMosquitto {
  readonly port: number;
  readonly url: string;
  readonly admin: { readonly username: string; readonly password: string };
  /** Run dynamic-security commands as the admin; the answers in order. */
  control(commands: ReadonlyArray<Record<string, unknown>>): Promise<Array<{ command: string; error?: string; data?: Record<string, unknown> }>>;
  stop(): Promise<void>;
}

export async function startDynsecMosquitto(): Promise<DynsecMosquitto> {
  const dir = tempDir('backhaul-dynsec-');
  const port = await freePort();
  const admin = { username: 'admin', password: 'admin-password-0123' };
  const state = join(dir.path, 'dynamic-security.json');
  execFileSync(MOSQUITTO_CTRL, ['dynsec', 'init', state, admin.username, admin.password], { stdio: 'ignore' });
  const conf = join(dir.path, 'mosquitto.conf');
  writeFileSync(
    conf,
    // `user`: started as root, Mosquitto would switch to the `mosquitto` user, who cannot read this private folder.
    [`user ${userInfo().username}`, `listener ${port} 127.0.0.1`, `plugin ${DYNSEC_PLUGIN}`, `plugin_opt_config_file ${state}`, 'allow_anonymous false', `persistence false`, ''].join('\n'),
  );
  const proc: ChildProcess = spawn(MOSQUITTO_BIN, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr?.on('data', (c: Buffer) => (log += c.toString('utf8')));
  await until(() => tcpReachable('127.0.0.1', port, 200), { what: `Mosquitto listening on ${port} (its log: ${log})` });
  const url = `mqtt://127.0.0.1:${port}`;
  return {
    port,
    url,
    admin,
    async control(commands) {
      const c = await mqtt.connectAsync(url, { ...admin, reconnectPeriod: 0 });
      try {
        await c.subscribeAsync('$CONTROL/dynamic-security/v1/response');
        const got = new Promise<string>((resolve) => c.once('message', (_t, p) => resolve(p.toString('utf8'))));
        await c.publishAsync('$CONTROL/dynamic-security/v1', JSON.stringify({ commands }));
        return (JSON.parse(await got) as { responses: Array<{ command: string; error?: string; data?: Record<string, unknown> }> }).responses;
      } finally {
        await c.endAsync(true);
      }
    },
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise<void>((r) => proc.once('exit', () => r()));
        proc.kill('SIGTERM');
        await exited;
      }
      dir.cleanup();
    },
  };
}
