// The `backhaul` command. Exit codes: 0 fine, 1 config invalid or start failed, 2 usage error.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildConfig, loadConfigFile, type LoadedConfig } from '../runtime/config.js';
import { ConfigErrors, errorText, isBackhaulError } from '../core/errors.js';
import { inlineSecretValues, inlineSecretWarnings } from '../runtime/shown-config.js';
import { chooseLogLevel, createLogger, scrubSecrets, type Logger } from '../core/logger.js';
import { Hub } from '../runtime/hub.js';
import { builtinRegistry } from '../runtime/registry.js';
import { demoConfig, demoToken, pickPort } from './demo.js';
import { generatePassword } from '../devices/credentials.js';
import { summarize } from './summary.js';
import { dataDirOf, formatStatus } from './status.js';
import { ControlServer, fetchStatus, type StatusReport } from '../runtime/control.js';
import { findOrphanOutboxes } from '../outbox/files.js';
import { makePrivateDir, wideModeMessage, wideModes } from '../core/private-files.js';
import { devicesMain, isDevicesCommand } from './devices/index.js';
import { isTokensCommand, tokensMain } from './tokens.js';
import { alarmsMain, isAlarmsCommand } from './alarms.js';
import { codecsMain, isCodecsCommand } from './codecs.js';
import { certsMain, isCertsCommand } from './certs.js';

const HELP = `backhaul — IoT concentrator: gather frames, decode, route, deliver.

Usage:
  backhaul start -c FILE     run with a config file (JSON, comments and trailing commas allowed)
      --discard-orphan-outboxes   delete the queues of sinks removed from the config (kept by default)
  backhaul check -c FILE     validate a config and print what would run; exit 1 on any error
  backhaul status -c FILE    ask the running instance (same data folder) for its inputs and sinks
      --json                 the raw status as JSON
  backhaul devices COMMAND   the device registry: list, show, add, set, enable, disable, import,
                             reset-credentials, types (backhaul devices --help)
  backhaul tokens COMMAND    API tokens: create --role viewer|operator|admin, list, revoke ID
                             (backhaul tokens --help)
  backhaul alarms COMMAND    alarms: list [--all], ack ID [--note T], clear ID [--note T]
                             (backhaul alarms --help)
  backhaul certs COMMAND     the site's TLS certificates (<data>/certs/): init (the CA), server [--host NAME]
                             [--ip ADDR], device ID, list (what expires when) (backhaul certs --help)
  backhaul codecs test FILE  run a LoRaWAN payload codec's examples (device-repository YAML) in the sandbox
  backhaul demo [options]    embedded broker + simulated valves + SQLite historian + JSON-lines file
      --port N               broker port (default 1883, or a free port if 1883 is taken)
      --data DIR             data folder (default ./data)
      --devices N            simulated devices (default 5)
      --interval MS          ms between a device's frames (default 2000)
      --api-port N           HTTP API and dashboard port (default 8080, or a free port if taken)
  backhaul --version
  backhaul --help

Logs go to stdout: readable on a terminal, JSON lines otherwise. BACKHAUL_LOG_LEVEL=debug for more (it wins over
the config's log.level).
Docs: docs/config.md (config reference), docs/errors.md (error codes).`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function printConfigError(e: unknown): void {
  if (e instanceof ConfigErrors) {
    for (const err of e.errors) process.stderr.write(`${err.toString()}\n`);
    process.stderr.write(`${e.errors.length} error${e.errors.length === 1 ? '' : 's'} in the config; nothing was started.\n`);
  } else if (isBackhaulError(e)) {
    process.stderr.write(`${e.toString()}\n`);
  } else {
    process.stderr.write(`${errorText(e)}\n`);
  }
}

function load(file: string | undefined): LoadedConfig | undefined {
  if (!file) {
    process.stderr.write('BH_USAGE missing -c FILE (the config file)\n');
    process.exitCode = 2;
    return undefined;
  }
  try {
    return loadConfigFile(file, { registry: builtinRegistry() });
  } catch (e) {
    printConfigError(e);
    process.exitCode = 1;
    return undefined;
  }
}

/** What the logger and the status report scrub: resolved secrets and secrets written inline (config/redact.ts). */
function logSecrets(cfg: LoadedConfig): string[] {
  return [...cfg.secretValues, ...inlineSecretValues(cfg)];
}

/** The logger of a running instance: BACKHAUL_LOG_LEVEL wins over the config; a bad one is a usage error (exit 2). */
function startLogger(cfg: LoadedConfig): Logger | undefined {
  try {
    return createLogger({ level: chooseLogLevel(process.env, cfg.logLevel), secrets: () => logSecrets(cfg) });
  } catch (e) {
    printConfigError(e);
    process.exitCode = 2;
    return undefined;
  }
}

async function run(
  cfg: LoadedConfig,
  logger: Logger,
  // The demo writes its own config with passwords it just made: warning about them would only puzzle a newcomer.
  opts: { discardOrphanOutboxes?: boolean; generatedConfig?: boolean } = {},
  onStarted?: (hub: Hub) => void,
): Promise<void> {
  const hub = new Hub({
    config: cfg,
    logger,
    discardOrphanOutboxes: opts.discardOrphanOutboxes ?? false,
    onFirstAdminToken: (token) =>
      process.stdout.write(
        `\nThe first API token (admin) was created. It is shown this once; only its hash is kept:\n\n  ${token}\n\n` +
          'Use it as "Authorization: Bearer <token>", or paste it into the dashboard\'s login. More: backhaul tokens create --role viewer -c FILE\n\n',
      ),
  });
  const startedAt = Date.now();
  const control = new ControlServer(
    cfg.dataDir,
    // Scrubbed like log lines: a sink's last error must not carry a secret to `backhaul status`.
    () =>
      JSON.parse(
        scrubSecrets(
          JSON.stringify({
            pid: process.pid,
            version: version(),
            startedAt,
            now: Date.now(),
            dataDir: cfg.dataDir,
            inputs: hub.inputStatus(),
            sinks: hub.sinkStatus(),
            brokerSync: hub.brokerSyncStatus(),
          }),
          logSecrets(cfg),
        ),
      ) as StatusReport,
    (req) => hub.sendCommand(req),
    (req) => hub.alarmsRequest(req),
  );
  for (const w of [...cfg.warnings, ...(opts.generatedConfig ? [] : inlineSecretWarnings(cfg))]) logger.warn(w);
  try {
    // The control socket first: it refuses to start a second instance on the same data folder.
    makePrivateDir(cfg.dataDir);
    await control.start();
    await hub.start();
  } catch (e) {
    printConfigError(e);
    await control.stop();
    logger.flush();
    process.exitCode = 1;
    return;
  }
  logger.info({ inputs: cfg.inputs.length, routes: cfg.routes.length, sinks: cfg.sinks.length, data: cfg.dataDir }, 'backhaul running');
  onStarted?.(hub);
  // The hub's own timers do not hold the process open (so tests and libraries can exit); a running service must.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  // SIGHUP: renewed certificate files, served to new connections; open ones stay (a refused file is logged).
  const onHup = () => {
    const r = hub.reloadCertificates();
    logger.info({ reloaded: r.reloaded, refused: r.refused }, 'SIGHUP: certificates reloaded');
  };
  process.on('SIGHUP', onHup);
  await new Promise<void>((resolveStop) => {
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        logger.warn('second signal: exiting now');
        process.exit(1);
      }
      logger.info({ signal: sig }, 'stopping: inputs closed, delivering what is queued');
      hub
        .stop()
        .then(() => control.stop())
        .then(
        () => {
          logger.info('stopped');
          resolveStop();
        },
        (e: unknown) => {
          logger.error({ err: e }, 'stop failed');
          process.exitCode = 1;
          resolveStop();
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  process.off('SIGHUP', onHup);
  clearInterval(keepAlive);
}

async function main(argv: string[]): Promise<void> {
  // `devices` has options of its own, which the strict parse below would refuse: src/cli/devices/index.ts parses them.
  if (isDevicesCommand(argv)) {
    process.exitCode = await devicesMain(argv);
    return;
  }
  if (isTokensCommand(argv)) {
    process.exitCode = await tokensMain(argv);
    return;
  }
  if (isAlarmsCommand(argv)) {
    process.exitCode = await alarmsMain(argv);
    return;
  }
  if (isCodecsCommand(argv)) {
    process.exitCode = await codecsMain(argv);
    return;
  }
  if (isCertsCommand(argv)) {
    process.exitCode = await certsMain(argv);
    return;
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        json: { type: 'boolean' },
        'discard-orphan-outboxes': { type: 'boolean' },
        port: { type: 'string' },
        data: { type: 'string' },
        devices: { type: 'string' },
        interval: { type: 'string' },
        'api-port': { type: 'string' },
        version: { type: 'boolean', short: 'v' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    process.stderr.write(`BH_USAGE ${(e as Error).message}\n\n${HELP}\n`);
    process.exitCode = 2;
    return;
  }
  const { values, positionals } = parsed;
  if (values.version) {
    process.stdout.write(`${version()}\n`);
    return;
  }
  const cmd = positionals[0];
  if (values.help || cmd === undefined || cmd === 'help') {
    process.stdout.write(`${HELP}\n`);
    if (cmd === undefined && !values.help) process.exitCode = 2;
    return;
  }
  switch (cmd) {
    case 'check': {
      const cfg = load(values.config);
      if (!cfg) return;
      // Queues left by sinks no longer in the config: `start` keeps them (and says so); say it here first.
      const orphans = findOrphanOutboxes(cfg.dataDir, new Set(cfg.sinks.map((s) => s.id))).filter((o) => o.items !== 0);
      const extra = orphans.map(
        (o) =>
          `outbox of removed sink "${o.sink}": ${o.items < 0 ? 'an unreadable number of' : o.items} message(s) wait in ${o.path}; ` +
          'put the sink back to deliver them, or start with --discard-orphan-outboxes',
      );
      extra.push(...wideModes(cfg.dataDir).map(wideModeMessage));
      process.stdout.write(`${summarize(cfg, extra)}\n`);
      return;
    }
    case 'start': {
      const cfg = load(values.config);
      if (!cfg) return;
      const logger = startLogger(cfg);
      if (!logger) return;
      await run(cfg, logger, { discardOrphanOutboxes: values['discard-orphan-outboxes'] ?? false });
      return;
    }
    case 'status': {
      const dataDir = values.data ? resolve(values.data) : values.config ? dataDirOf(values.config) : undefined;
      if (!dataDir) {
        process.stderr.write('BH_USAGE status needs -c FILE (the config of the running instance) or --data DIR\n');
        process.exitCode = 2;
        return;
      }
      const report = await fetchStatus(dataDir);
      if (!report) {
        process.stderr.write(`BH_NOT_RUNNING no Backhaul is running with the data folder ${dataDir}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatStatus(report)}\n`);
      return;
    }
    case 'demo': {
      const num = (v: string | undefined, name: string, dflt: number): number => {
        if (v === undefined) return dflt;
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number`);
        return n;
      };
      let port: number, devices: number, intervalMs: number, apiPort: number;
      try {
        port = num(values.port, 'port', -1);
        apiPort = num(values['api-port'], 'api-port', -1);
        devices = num(values.devices, 'devices', 5);
        intervalMs = num(values.interval, 'interval', 2000);
      } catch (e) {
        process.stderr.write(`BH_USAGE ${(e as Error).message}\n`);
        process.exitCode = 2;
        return;
      }
      const chosen = port >= 0 ? port : await pickPort(1883);
      const chosenApi = apiPort >= 0 ? apiPort : await pickPort(8080, '127.0.0.1');
      const dataDir = resolve(values.data ?? 'data');
      const password = generatePassword();
      let cfg: LoadedConfig;
      let token: string;
      try {
        cfg = buildConfig(demoConfig({ port: chosen, apiPort: chosenApi, dataDir, devices, intervalMs, password }), { source: 'demo', dir: process.cwd() }, { registry: builtinRegistry() });
      } catch (e) {
        printConfigError(e);
        process.exitCode = 1;
        return;
      }
      try {
        token = demoToken(dataDir);
      } catch (e) {
        printConfigError(e);
        process.exitCode = 1;
        return;
      }
      const logger = startLogger(cfg);
      if (!logger) return;
      await run(cfg, logger, { generatedConfig: true }, (hub) => {
        const taken = port < 0 && chosen !== 1883 ? ' (1883 was taken)' : '';
        process.stdout.write(
          [
            '',
            `Backhaul demo is running: ${devices} simulated valves, an MQTT broker on port ${chosen}${taken}.`,
            `  watch the readings:   mosquitto_sub -h 127.0.0.1 -p ${chosen} -u demo -P ${password} -t 'backhaul/#' -v`,
            `  publish one:          mosquitto_pub -h 127.0.0.1 -p ${chosen} -u demo -P ${password} -t devices/kitchen -m '{"device":"kitchen","temperature":21.5}'`,
            '  (the demo login is made afresh each run; anonymous clients are refused)',
            `  history (SQLite):     ${resolve(dataDir, 'history.sqlite')}`,
            `  every reading (JSON): ${resolve(dataDir, 'readings.jsonl')}`,
            `  dashboard:            ${hub.apiUrl() ?? '-'}/  (log in with the token below)`,
            `  API token (admin):    ${token}`,
            '  (a fresh demo token each run; the previous one is revoked)',
            '  Ctrl-C stops it.',
            '',
          ].join('\n'),
        );
      });
      return;
    }
    default:
      process.stderr.write(`BH_USAGE unknown command "${cmd}"\n\n${HELP}\n`);
      process.exitCode = 2;
  }
}

await main(process.argv.slice(2));
