// `backhaul tokens …`: API tokens from the command line, where the config keeps them: its PostgreSQL `store` (`-c FILE`
// naming one: the whole config is loaded then, for the password), else `<data>/tokens.sqlite` of the config's data
// folder or of `--data DIR`; safe while Backhaul runs (SQLite WAL; PostgreSQL notices), and a revocation takes effect
// on the API's next request (on every instance sharing the PostgreSQL store within a second). Errors print as
// `CODE path: message` on stderr; exit 1 for errors, 2 for usage.
import { ROLES, SqliteTokenStore, tokensPath, type Role, type TokenInfo, type TokenStore } from '../api/tokens.js';
import { loadConfigFile } from '../runtime/config.js';
import { builtinRegistry } from '../runtime/registry.js';
import { openTokenStore } from '../runtime/stores.js';
import { configBasics, configDataDir as dataDirOf } from './status.js';
import { DATA_OPTIONS, dataDirArg, exitCode, isSubcommand, iso, json, stdio, subcommandLine, table, UsageError, type Out, type Values as IoValues } from './io.js';

export const TOKENS_HELP = `backhaul tokens — API tokens (<data>/tokens.sqlite, or the config's PostgreSQL store)

Usage: backhaul tokens COMMAND [options] (-c FILE | --data DIR) [--json]
  create --role ${ROLES.join('|')}   a new token, printed once (only its hash is kept)
      --name N               a name unique among live tokens (default <role>-<id>)
  list                       every token, revoked ones too (never the tokens themselves)
  revoke ID                  the token stops working at once, its dashboard sessions too

Roles: viewer reads; operator also sends orders and edits devices; admin also manages tokens. Docs: docs/api.md.`;

const OPTIONS = {
  ...DATA_OPTIONS,
  role: { type: 'string' },
  name: { type: 'string' },
} as const;

type Values = IoValues<typeof OPTIONS>;

/** True when the first word of the command line is `tokens` (options may come before it). */
export function isTokensCommand(argv: readonly string[]): boolean {
  return isSubcommand(argv, 'tokens', OPTIONS);
}

interface Ctx {
  readonly store: TokenStore;
  readonly v: Values;
  readonly args: readonly string[];
  readonly io: Out;
}

async function create(c: Ctx): Promise<number> {
  if (c.args.length > 0) throw new UsageError('create takes no arguments (the name is --name N)');
  if (c.v.role === undefined) throw new UsageError(`create needs --role ${ROLES.join('|')}`);
  // An unknown role is the store's to refuse: BH_TOKEN_ROLE, exit 1.
  const { info, token } = await c.store.create(c.v.name, c.v.role as Role);
  if (c.v.json) {
    c.io.out(json({ id: info.id, name: info.name, role: info.role, token }));
    return 0;
  }
  c.io.out(`created token ${info.id} "${info.name}" (${info.role})`);
  c.io.out(`token: ${token}`);
  c.io.out('The token is shown this once and will not be shown again; only its hash is kept.');
  return 0;
}

async function list(c: Ctx): Promise<number> {
  if (c.args.length > 0) throw new UsageError('list takes no arguments');
  const tokens = await c.store.list();
  if (c.v.json) {
    c.io.out(json(tokens));
    return 0;
  }
  if (tokens.length === 0) {
    c.io.out('no tokens');
    return 0;
  }
  c.io.out(
    table([
      ['ID', 'NAME', 'ROLE', 'CREATED', 'LAST USED', 'REVOKED'],
      ...tokens.map((t: TokenInfo) => [t.id, t.name, t.role, iso(t.createdAt), iso(t.lastUsedAt), iso(t.revokedAt)]),
    ]),
  );
  const live = tokens.filter((t) => t.revokedAt === undefined).length;
  c.io.out(`${tokens.length} token${tokens.length === 1 ? '' : 's'}, ${live} active`);
  return 0;
}

async function revoke(c: Ctx): Promise<number> {
  const id = c.args[0];
  if (id === undefined || c.args.length > 1) throw new UsageError('revoke takes one token id (see `backhaul tokens list`)');
  const before = await c.store.get(id);
  const info = await c.store.revoke(id);
  const already = before?.revokedAt !== undefined;
  if (c.v.json) c.io.out(json({ ...info, changed: !already }));
  else c.io.out(already ? `token ${info.id} "${info.name}" was already revoked at ${iso(info.revokedAt)}` : `token ${info.id} "${info.name}" revoked`);
  return 0;
}

export interface TokensRunOptions {
  readonly io?: Out;
}

/** Run `backhaul tokens …` (argv as given to `backhaul`); resolves with the exit code. */
export async function tokensMain(argv: readonly string[], opts: TokensRunOptions = {}): Promise<number> {
  const io = opts.io ?? stdio;
  const line = subcommandLine(argv, OPTIONS, TOKENS_HELP, io);
  if (typeof line === 'number') return line;
  const { values, cmd, args } = line;
  const commands: Record<string, (c: Ctx) => Promise<number>> = { create, list, revoke };
  const cmdFn = commands[cmd];
  if (!cmdFn) {
    io.err(`BH_USAGE unknown tokens command "${cmd}"\n\n${TOKENS_HELP}`);
    return 2;
  }
  let store: TokenStore | undefined;
  try {
    return await exitCode(io, async () => {
      const dataDir = dataDirArg(values, 'tokens', dataDirOf);
      store = await openTokens(values.config, dataDir);
      return cmdFn({ store, v: values, args, io });
    });
  } finally {
    await store?.close();
  }
}

/** The tokens the config names: its `store` when that is PostgreSQL, else `<data>/tokens.sqlite`. */
async function openTokens(configFile: string | undefined, dataDir: string): Promise<TokenStore> {
  if (configFile !== undefined && configBasics(configFile).store === 'postgres') {
    const config = loadConfigFile(configFile, { registry: builtinRegistry() });
    return openTokenStore(config.store, dataDir);
  }
  return SqliteTokenStore.open(tokensPath(dataDir));
}
