// pino logger: human-readable on a TTY, JSON lines otherwise. Every driver instance gets a child logger
// (`{input: "radio"}`, `{sink: "emon"}`). Secret values are scrubbed from every line as it is written, so a secret
// that slips into an error message from a library still never reaches the log.
import { pino, type Logger, type DestinationStream } from 'pino';
import pretty from 'pino-pretty';
import { BackhaulError } from './errors.js';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/**
 * The level to log at: `BACKHAUL_LOG_LEVEL` when set, else the config's `log.level`, else info. The environment wins
 * so an operator can turn on debug for one run without editing the config. Throws BH_USAGE for a word that is no level.
 */
export function chooseLogLevel(env: NodeJS.ProcessEnv, configured: string | undefined): string {
  const fromEnv = env['BACKHAUL_LOG_LEVEL'];
  if (fromEnv === undefined || fromEnv === '') return configured ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(fromEnv)) {
    throw new BackhaulError('BH_USAGE', `BACKHAUL_LOG_LEVEL=${JSON.stringify(fromEnv)} is no log level; use one of ${LOG_LEVELS.join(', ')}`);
  }
  return fromEnv;
}

export interface LoggerOptions {
  readonly level?: string;
  /** Human-readable output. Default: when stdout is a TTY. */
  readonly pretty?: boolean;
  /** Where to write; default stdout. */
  readonly destination?: DestinationStream;
  /** Returns the secret values to scrub; read on every line so secrets loaded after start-up are covered. */
  readonly secrets?: () => readonly string[];
}

export function scrubSecrets(line: string, secrets: readonly string[]): string {
  let out = line;
  for (const s of secrets) {
    if (s.length < 4) continue; // such short secrets are refused at load (BH_SECRET_WEAK); scrubbing them would shred lines
    out = out.split(s).join('[secret]');
    const escaped = JSON.stringify(s).slice(1, -1);
    if (escaped !== s) out = out.split(escaped).join('[secret]');
  }
  return out;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const usePretty = opts.pretty ?? Boolean(process.stdout.isTTY);
  const secrets = opts.secrets;
  const stream: DestinationStream =
    opts.destination ?? (usePretty ? pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }) : pino.destination(1));
  return pino(
    {
      level: opts.level ?? process.env['BACKHAUL_LOG_LEVEL'] ?? 'info',
      base: undefined,
      hooks: secrets ? { streamWrite: (s: string) => scrubSecrets(s, secrets()) } : {},
    },
    stream,
  );
}

/** A logger that drops everything, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
