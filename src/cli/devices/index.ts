// `backhaul devices …`: the device registry from the command line. Works on `<data>/registry.sqlite` of the config's
// data folder (`-c FILE`) or of `--data DIR`; safe to use while Backhaul runs (SQLite WAL). Readable tables by
// default, `--json` for scripts. Errors print as `CODE path: message` on stderr; exit 1 for errors, 2 for usage.
// This file parses the command line, opens the registry and dispatches; each subcommand is a file of its own here,
// and what they share is in shared.ts.
import { resolve } from 'node:path';
import { BackhaulError, errorText } from '../../core/errors.js';
import { DeviceTypes } from '../../devices/device-types.js';
import { registryPath, SqliteDeviceStore, type DeviceStore } from '../../devices/store/index.js';
import { TopicScheme } from '../../devices/topics.js';
import { configBasics } from '../status.js';
import { loadConfigFile } from '../../runtime/config.js';
import { builtinRegistry } from '../../runtime/registry.js';
import { openDeviceStore } from '../../runtime/stores.js';
import { exitCode, isSubcommand, stdio, subcommandLine, UsageError, type Out } from '../io.js';
import { add } from './add.js';
import { certificate } from './certificate.js';
import { claim } from './claim.js';
import { command } from './command.js';
import { commandsCmd } from './commands.js';
import { enable } from './enable.js';
import { block } from './block.js';
import { importCmd } from './import.js';
import { list } from './list.js';
import { resetCredentials } from './reset-credentials.js';
import { set } from './set.js';
import { show } from './show.js';
import { OPTIONS, type Ctx } from './shared.js';
import { typesCmd } from './types.js';
import { cliBroker, type CliBroker } from './broker.js';
import { syncBroker } from './sync-broker.js';

export const DEVICES_HELP = `backhaul devices — the device registry (<data>/registry.sqlite)

Usage: backhaul devices COMMAND [options] (-c FILE | --data DIR) [--json]
  list                       every device, as a table
      --site S --building B --room R --type T --state INIT|ACTIVE|BLOCKED --tag T --search TEXT
      --enabled | --disabled
  show ID                    one device: attributes, topics, thresholds, login, config, last status, audit
  add ID --type T            register a device and print its password (shown once)
      --kind mac|deveui|uuid|opentrv|other   (guessed when the id's form tells)
      --site S --building B --room R --description D --tags "a;b"
      --max-silent 30m --battery-floor 2.4 --device-config JSON --disabled
      --bootstrap            print no password: the device's first bootstrap call (in its claim window) receives one
      --claim-code CODE      the code on the device's label, which its bootstrap call must give (stored hashed)
  set ID [options]           change attributes (same options as add; an empty value clears: --room '')
  enable ID | disable ID
  block ID [--reason TEXT]   BLOCKED: its readings are dropped, its login refused, a blocked alarm raised
  unblock ID                 back to INIT (its next self-description decides again); the alarm clears
  import FILE                bulk provisioning from a CSV or JSON-lines manifest, one line per row
      --dry-run              report what would change; change nothing
      --format csv|jsonl     (default: from the file name or its first line)
      --claim-window 30m     open the claim window of the file's devices still waiting for their first password
  reset-credentials ID       a new password, printed once; the old one stops working
      --bootstrap            print none: the device's next bootstrap call (in its claim window) receives the new one
  certificate ID FILE        the client certificate (PEM) it may log in with at the broker's TLS listeners, instead
                             of a password; only its SHA-256 fingerprint is kept. A new one replaces the old
      --fingerprint HEX      give the fingerprint instead of the file (openssl x509 -fingerprint -sha256)
      --remove               no certificate login any more
  claim open ID | --all-unclaimed [--for 30m]
                             let the device(s) fetch their first password by MAC over bootstrap until the window
                             closes (default 30m, at most 30d); without one every bootstrap call is refused
  claim close ID | --all     close the window(s) early
  claim code ID CODE         the claim code printed on its label ('' removes it); only its hash is kept
  command ID ORDER           have the running Backhaul publish an order (reboot, reinstall, ...) on the device's
                             command topic; recorded in the audit log (reinstall also resets its credentials).
                             A LoRaWAN device's order is a downlink through its network server, encoded by its
                             codec's encodeDownlink from the parameters
      --param k=v            a parameter (repeatable; v is JSON when it parses, else text)
      --hex 0110 --fport 10  a LoRaWAN downlink's bytes as given, not encoded by a codec (or --base64 ARBA)
      --wait 30s             wait for the device's acknowledgement and exit 1 if none comes
      --force                send it even to a device that never connected (refused otherwise)
  sync-broker                bring the external Mosquitto (config brokerSync) in step with the registry; prints what changed
  commands [ID]              recent orders and what became of them (sent, acknowledged, failed, expired)
  types                      the device types and their defaults

IDs may be written in any common form (AA-BB-CC-DD-EE-FF, 0D49, ...). Docs: src/devices/README.md.`;

/** Subcommands after which an external Mosquitto (brokerSync) is brought in step. */
const CHANGES_REGISTRY = new Set(['add', 'set', 'enable', 'disable', 'block', 'unblock', 'import', 'reset-credentials']);

/** True when the first word of the command line is `devices` (options may come before it). */
export function isDevicesCommand(argv: readonly string[]): boolean {
  return isSubcommand(argv, 'devices', OPTIONS);
}

export interface DevicesRunOptions {
  readonly io?: Out;
  /** The device types (default: the built-in ones). */
  readonly types?: DeviceTypes;
}

/** Run `backhaul devices …` (argv as given to `backhaul`); resolves with the exit code. */
export async function devicesMain(argv: readonly string[], opts: DevicesRunOptions = {}): Promise<number> {
  const io = opts.io ?? stdio;
  const line = subcommandLine(argv, OPTIONS, DEVICES_HELP, io);
  if (typeof line === 'number') return line;
  const { values, cmd, args } = line;
  const types = opts.types ?? new DeviceTypes();
  const commands: Record<string, (c: Ctx) => Promise<number>> = {
    list,
    show,
    add,
    set,
    enable: (c) => enable(c, true),
    disable: (c) => enable(c, false),
    block: (c) => block(c, true),
    unblock: (c) => block(c, false),
    import: importCmd,
    'reset-credentials': resetCredentials,
    certificate,
    claim,
    command,
    commands: commandsCmd,
    'sync-broker': syncBroker,
  };
  if (cmd === 'types') return typesCmd({ types, v: values, io });
  const run = commands[cmd];
  if (!run) {
    io.err(`BH_USAGE unknown devices command "${cmd}"\n\n${DEVICES_HELP}`);
    return 2;
  }
  let store: DeviceStore | undefined;
  let broker: CliBroker | undefined;
  try {
    return await exitCode(io, async () => {
      const basics = values.config !== undefined ? configOf(values.config) : undefined;
      const dataDir = values.data !== undefined ? resolve(values.data) : basics?.dataDir;
      if (dataDir === undefined) throw new UsageError('devices needs -c FILE (the config, for its data folder) or --data DIR');
      const scheme = new TopicScheme(types, basics?.topics ?? {});
      store = await openRegistry(values.config, dataDir, types);
      broker = cliBroker(values.config, store, scheme);
      const code = await run({ store, types, scheme, v: values, args, io, dataDir, broker });
      // The registry changed: Mosquitto follows now (a disabled device is cut off at once).
      if (code === 0 && broker.configured && CHANGES_REGISTRY.has(cmd)) {
        const r = await broker.resync().catch((e: unknown) => {
          throw new BackhaulError(
            'BH_BROKER_SYNC',
            `the registry was changed, but Mosquitto was not brought in step (the running instance, or \`devices sync-broker\`, will): ${errorText(e)}`,
            { path: 'brokerSync' },
          );
        });
        if (r.changes.length > 0) io.err(`brokerSync: ${r.changes.map((ch) => `${ch.action} ${ch.username}`).join(', ')}`);
      }
      return code;
    });
  } finally {
    await broker?.close();
    await store?.close();
  }
}

/**
 * The registry the config names: its `store` when that is PostgreSQL (the whole config is loaded then, for the
 * password in the secrets store), else `<data>/registry.sqlite` of the config's or `--data`'s folder.
 */
async function openRegistry(configFile: string | undefined, dataDir: string, types: DeviceTypes): Promise<DeviceStore> {
  if (configFile !== undefined && configBasics(configFile).store === 'postgres') {
    const config = loadConfigFile(configFile, { registry: builtinRegistry() });
    return openDeviceStore(config.store, dataDir, { types });
  }
  return SqliteDeviceStore.open(registryPath(dataDir), { types });
}

function configOf(file: string): ReturnType<typeof configBasics> {
  try {
    return configBasics(file);
  } catch (e) {
    throw new BackhaulError('BH_CONFIG_READ', `cannot read config file ${resolve(file)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}
