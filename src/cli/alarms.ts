// `backhaul alarms …`: the alarms of a running instance, through its control socket (the keeper holds the open
// alarms in memory and writes every change; a second writer on the registry would be overwritten). Errors print as
// `CODE path: message` on stderr; exit 1 for errors (BH_NOT_RUNNING when nothing runs), 2 for usage.
import { userInfo } from 'node:os';
import { humanDuration } from '../core/duration.js';
import { ALARM_KINDS, ALARM_STATES, type Alarm, type AlarmKind, type AlarmState } from '../devices/alarm-types.js';
import { alarmsCall } from '../runtime/control.js';
import { configDataDir as dataDirOf } from './status.js';
import { DATA_OPTIONS, dataDirArg, exitCode, isSubcommand, iso, json, stdio, subcommandLine, table, UsageError, type Out, type Values as IoValues } from './io.js';

export const ALARMS_HELP = `backhaul alarms — alarms of the running instance (docs/events.md: alarm.*)

Usage: backhaul alarms COMMAND [options] (-c FILE | --data DIR) [--json]
  list                       open alarms (raised, then acknowledged), newest first
      --all                  cleared ones too (history)
      --state S              only ${['open', ...ALARM_STATES].join('|')}
      --kind K               only ${ALARM_KINDS.join('|')}
  ack ID [--note TEXT]       acknowledge: no more reminders; it clears when its condition ends
  clear ID [--note TEXT]     clear by hand

Backhaul must be running with that data folder (the alarms are its to change).`;

const OPTIONS = {
  ...DATA_OPTIONS,
  all: { type: 'boolean' },
  state: { type: 'string' },
  kind: { type: 'string' },
  note: { type: 'string' },
} as const;

type Values = IoValues<typeof OPTIONS>;

export function isAlarmsCommand(argv: readonly string[]): boolean {
  return isSubcommand(argv, 'alarms', OPTIONS);
}

interface Ctx {
  readonly dataDir: string;
  readonly v: Values;
  readonly args: readonly string[];
  readonly io: Out;
}

const actor = () => `cli:${userInfo().username}`;

async function list(c: Ctx): Promise<number> {
  if (c.args.length > 0) throw new UsageError('list takes no arguments');
  const state = c.v.state ?? (c.v.all ? undefined : 'open');
  if (state !== undefined && state !== 'open' && !(ALARM_STATES as readonly string[]).includes(state)) {
    throw new UsageError(`--state is one of open, ${ALARM_STATES.join(', ')}`);
  }
  if (c.v.kind !== undefined && !(ALARM_KINDS as readonly string[]).includes(c.v.kind)) throw new UsageError(`--kind is one of ${ALARM_KINDS.join(', ')}`);
  const items = await alarmsCall<Alarm[]>(c.dataDir, {
    action: 'list',
    query: { ...(state !== undefined ? { state: state as AlarmState | 'open' } : {}), ...(c.v.kind !== undefined ? { kind: c.v.kind as AlarmKind } : {}), limit: 1000 },
  });
  if (c.v.json) {
    c.io.out(json(items));
    return 0;
  }
  if (items.length === 0) {
    c.io.out(state === 'open' ? 'no open alarms' : 'no alarms');
    return 0;
  }
  const now = Date.now();
  c.io.out(
    table([
      ['ID', 'STATE', 'SEVERITY', 'KIND', 'SUBJECT', 'RAISED', 'FOR', 'MESSAGE'],
      ...items.map((a) => [
        a.id,
        a.state === 'acknowledged' ? `acknowledged (${a.acknowledgedBy ?? '?'})` : a.state,
        a.severity,
        a.kind,
        `${a.subjectKind} ${a.subject}${a.aspect ? ` ${a.aspect}` : ''}`,
        iso(a.raisedAt),
        humanDuration(Math.max(0, (a.clearedAt ?? now) - a.raisedAt)),
        a.message,
      ]),
    ]),
  );
  return 0;
}

async function change(c: Ctx, action: 'ack' | 'clear'): Promise<number> {
  const id = c.args[0];
  if (id === undefined || c.args.length > 1) throw new UsageError(`${action} takes one alarm id (see \`backhaul alarms list\`)`);
  const a = await alarmsCall<Alarm>(c.dataDir, { action, id, by: actor(), ...(c.v.note !== undefined ? { note: c.v.note } : {}) });
  if (c.v.json) c.io.out(json(a));
  else c.io.out(`alarm ${a.id} ${a.state}: ${a.message}`);
  return 0;
}

/** Run `backhaul alarms …` (argv as given to `backhaul`); resolves with the exit code. */
export async function alarmsMain(argv: readonly string[], opts: { readonly io?: Out } = {}): Promise<number> {
  const io = opts.io ?? stdio;
  const line = subcommandLine(argv, OPTIONS, ALARMS_HELP, io);
  if (typeof line === 'number') return line;
  const { values, cmd, args } = line;
  const commands: Record<string, (c: Ctx) => Promise<number>> = { list, ack: (c) => change(c, 'ack'), clear: (c) => change(c, 'clear') };
  const cmdFn = commands[cmd];
  if (!cmdFn) {
    io.err(`BH_USAGE unknown alarms command "${cmd}"\n\n${ALARMS_HELP}`);
    return 2;
  }
  return exitCode(io, () => {
    const dataDir = dataDirArg(values, 'alarms', dataDirOf);
    return cmdFn({ dataDir, v: values, args, io });
  });
}
