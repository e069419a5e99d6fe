// `backhaul certs …`: a small site's PKI in `<data>/certs/` (or `--dir DIR`): a local CA, server certificates and
// per-device client certificates, made by src/core/pki.ts; every file 0600 in a 0700 folder. docs/tls.md is the guide.
// Errors print as `CODE path: message` on stderr; exit 1 for errors, 2 for usage.
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { BackhaulError, isBackhaulError, shown } from '../core/errors.js';
import { normaliseId, resolveIdKind } from '../core/ids.js';
import {
  checkCaName,
  checkDays,
  checkHost,
  checkIp,
  describeCertificate,
  isSignedBy,
  makeCa,
  makeDeviceCert,
  makeServerCert,
  pemTypes,
  type CertificateInfo,
  type Issued,
} from '../core/pki.js';
import { makePrivateDir, octal, PRIVATE_DIR_MODE, writePrivateFile } from '../core/private-files.js';
import { configDataDir } from './status.js';
import { DATA_OPTIONS, exitCode, isSubcommand, iso, json, stdio, subcommandLine, table, UsageError, type Out, type Values as IoValues } from './io.js';

export const CERTS_HELP = `backhaul certs — the site's certificates (<data>/certs/, or --dir DIR); guide: docs/tls.md

Usage: backhaul certs COMMAND [options] (-c FILE | --data DIR | --dir DIR) [--json]
  init                       make the site CA: ca.pem (give it to devices and clients) and ca-key.pem (keep it here)
      --name N               the CA's name (default "Backhaul site CA")
      --days N               validity (default 3650)
      --force                replace an existing CA (certificates it signed stop verifying)
  server                     a server certificate signed by the CA: server.pem, server-key.pem
      --host NAME            a DNS name clients dial (repeat for more)
      --ip ADDR              an IP address clients dial (repeat for more)
                             (neither given: this machine's host name and 127.0.0.1)
      --name N               file name: N.pem, N-key.pem (default server)
      --days N               validity (default 825)
  device ID                  a device's client certificate: devices/<id>.pem, devices/<id>-key.pem
      --kind KIND            the id's kind when its form does not tell (mac, deveui, uuid, opentrv, other)
      --days N               validity (default 825)
  list                       every certificate in the folder: subject, names, expiry, days left; flags those
                             expired, expiring within 30 days, or not signed by the current CA

Run \`certs server\` or \`certs device ID\` again to renew: it replaces the files. Every file is made 0600.`;

const OPTIONS = {
  ...DATA_OPTIONS,
  dir: { type: 'string' },
  name: { type: 'string' },
  days: { type: 'string' },
  host: { type: 'string', multiple: true },
  ip: { type: 'string', multiple: true },
  kind: { type: 'string' },
  force: { type: 'boolean' },
} as const;

type Values = IoValues<typeof OPTIONS>;

const DAY_MS = 86_400_000;
/** `list` flags a certificate expiring sooner than this. */
const SOON_DAYS = 30;
const CA_FILE = 'ca.pem';
const CA_KEY_FILE = 'ca-key.pem';
const DEVICES_DIR = 'devices';

/** True when the first word of the command line is `certs` (options may come before it). */
export function isCertsCommand(argv: readonly string[]): boolean {
  return isSubcommand(argv, 'certs', OPTIONS);
}

interface Ctx {
  readonly dir: string;
  readonly v: Values;
  readonly args: readonly string[];
  readonly io: Out;
  readonly now: number;
}

/** `--days` as a number of days; BH_CERT_DAYS at `--days` when it is not a whole number in range. */
function days(v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = /^\s*\d+\s*$/.test(v) ? Number(v) : Number.NaN;
  if (Number.isNaN(n)) throw new BackhaulError('BH_CERT_DAYS', `${shown(v)} is not a whole number of days`, { path: '--days' });
  return checkDays(n, '--days');
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new BackhaulError('BH_CERT_READ', `cannot read the file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { path, cause: e });
  }
}

/** The CA's files; BH_CERT_NO_CA when either is missing. */
function readCa(dir: string): Issued {
  const cert = join(dir, CA_FILE);
  const key = join(dir, CA_KEY_FILE);
  for (const f of [cert, key]) {
    if (!existsSync(f)) throw new BackhaulError('BH_CERT_NO_CA', `no CA in ${dir} (${f} is missing): run \`backhaul certs init\` first`, { path: f });
  }
  return { certPem: readText(cert), keyPem: readText(key) };
}

/** The folder (and devices/) 0700; an existing one wider than that is said, not changed (it may be shared on purpose). */
function ensureDir(c: Ctx, dir: string): void {
  makePrivateDir(dir);
  const mode = lstatSync(dir).mode & 0o777;
  if ((mode & 0o077) !== 0) c.io.err(`warning: ${dir} is mode ${octal(mode)}, open to group or others (chmod ${PRIVATE_DIR_MODE.toString(8)} it)`);
}

/** Key first: a certificate on disk is never without its key. */
function writePair(certFile: string, keyFile: string, issued: Issued): void {
  writePrivateFile(keyFile, issued.keyPem);
  writePrivateFile(certFile, issued.certPem);
}

function daysLeft(info: CertificateInfo, now: number): number {
  // Whole days, towards zero: 0 in its last day, -1 for one expired a day ago.
  return Math.trunc((info.notAfter.getTime() - now) / DAY_MS);
}

function expiryLine(info: CertificateInfo, now: number): string {
  return `expires ${iso(info.notAfter.getTime())} (in ${daysLeft(info, now)} days)`;
}

/** Where each kind of key may go, said beside it. */
const KEY_NOTE = {
  ca: 'never copy it: whoever has it can make certificates your site trusts',
  server: 'it stays on this machine, for the TLS listeners',
  device: 'copy it to that device only, with ca.pem and the certificate',
} as const;

async function made(c: Ctx, what: string, keyKind: keyof typeof KEY_NOTE, certFile: string, keyFile: string, issued: Issued, notes: string[] = []): Promise<number> {
  const info = await describeCertificate(issued.certPem);
  if (c.v.json) {
    c.io.out(
      json({
        file: certFile,
        key: keyFile,
        subject: info.subject,
        sans: info.sans,
        notAfter: info.notAfter.toISOString(),
        daysLeft: daysLeft(info, c.now),
        fingerprint256: info.fingerprint256,
      }),
    );
    return 0;
  }
  for (const n of notes) c.io.out(n);
  c.io.out(`${what}: ${certFile}`);
  c.io.out(`key: ${keyFile} (mode 0600; ${KEY_NOTE[keyKind]})`);
  c.io.out(`subject: ${info.subject}${info.sans.length > 0 ? `, names: ${info.sans.join(', ')}` : ''}`);
  c.io.out(`fingerprint (SHA-256): ${info.fingerprint256}`);
  c.io.out(expiryLine(info, c.now));
  return 0;
}

async function init(c: Ctx): Promise<number> {
  if (c.args.length > 0) throw new UsageError('init takes no arguments (the CA name is --name N)');
  const d = days(c.v.days, 3650);
  const certFile = join(c.dir, CA_FILE);
  const keyFile = join(c.dir, CA_KEY_FILE);
  const existing = [certFile, keyFile].filter((f) => existsSync(f));
  const first = existing[0];
  if (first !== undefined && !c.v.force) {
    throw new BackhaulError('BH_CERT_CA_EXISTS', `a CA exists already in ${c.dir}; certificates it signed depend on it. --force replaces it`, { path: first });
  }
  const issued = await makeCa({ name: checkCaName(c.v.name ?? 'Backhaul site CA', '--name'), days: d, now: c.now });
  ensureDir(c, c.dir);
  writePair(certFile, keyFile, issued);
  const notes = first !== undefined ? ['replaced the CA: certificates the old one signed no longer verify; make them again (`backhaul certs list` flags them)'] : [];
  return made(c, 'CA', 'ca', certFile, keyFile, issued, notes);
}

/** A certificate file name of one's choosing: a plain word, never the CA's. */
function fileName(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name) || name === 'ca' || name === 'ca-key') {
    throw new BackhaulError('BH_CERT_NAME', `${shown(name)} is not a file name of letters, digits, ".", "_", "-" (and not "ca")`, { path: '--name' });
  }
  return name;
}

async function server(c: Ctx): Promise<number> {
  if (c.args.length > 0) throw new UsageError('server takes no arguments (names are --host NAME and --ip ADDR)');
  const d = days(c.v.days, 825);
  const name = fileName(c.v.name ?? 'server');
  let hosts = c.v.host ?? [];
  let ips = c.v.ip ?? [];
  const notes: string[] = [];
  if (hosts.length === 0 && ips.length === 0) {
    // The usual case on a small site: clients dial this machine by its name, and local tools by 127.0.0.1.
    const own = hostname();
    let ok = true;
    try {
      checkHost(own);
    } catch {
      ok = false;
    }
    hosts = ok ? [own] : [];
    ips = ['127.0.0.1'];
    notes.push(
      ok
        ? `no --host or --ip given: using this machine's host name "${own}" and 127.0.0.1`
        : `no --host or --ip given: this machine's host name ${shown(own)} is no DNS name, so only 127.0.0.1`,
    );
  }
  // Checked here too, so a bad value is named by its option.
  hosts = hosts.map((h) => checkHost(h, '--host'));
  for (const ip of ips) checkIp(ip, '--ip');
  const ca = readCa(c.dir);
  const issued = await makeServerCert({ ca, dnsNames: hosts, ipAddresses: ips, days: d, now: c.now });
  ensureDir(c, c.dir);
  const certFile = join(c.dir, `${name}.pem`);
  const keyFile = join(c.dir, `${name}-key.pem`);
  writePair(certFile, keyFile, issued);
  return made(c, 'server certificate', 'server', certFile, keyFile, issued, notes);
}

/** A canonical id as a file name: `/`, `%`, `\` and characters shells or other systems mind are %XX-escaped. */
export function deviceFileBase(id: string): string {
  return id.replace(/[^A-Za-z0-9._:@+=,-]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`).replace(/^\./, '%2E');
}

async function device(c: Ctx): Promise<number> {
  const raw = c.args[0];
  if (raw === undefined || c.args.length > 1) throw new UsageError('device takes one device id');
  const d = days(c.v.days, 825);
  // The registry's rule (`devices add`): the kind given, or told by the id's form; then the kind's canonical form.
  const kind = resolveIdKind(raw, c.v.kind, '--kind');
  const id = normaliseId(kind, raw, 'ID');
  const ca = readCa(c.dir);
  const issued = await makeDeviceCert({ ca, deviceId: id, days: d, now: c.now });
  const devDir = join(c.dir, DEVICES_DIR);
  ensureDir(c, devDir);
  const base = deviceFileBase(id);
  const certFile = join(devDir, `${base}.pem`);
  const keyFile = join(devDir, `${base}-key.pem`);
  writePair(certFile, keyFile, issued);
  await made(c, `device certificate for ${id} (${kind})`, 'device', certFile, keyFile, issued);
  // The registry is another folder's (the config's data): said, not done, so this command needs no config.
  if (!c.v.json) c.io.out(`To let it log in with this certificate: backhaul devices certificate ${id} ${certFile} -c CONFIG`);
  return 0;
}

interface Listed {
  readonly file: string;
  readonly subject?: string;
  readonly sans?: readonly string[];
  readonly notBefore?: string;
  readonly notAfter?: string;
  readonly daysLeft?: number;
  readonly fingerprint256?: string;
  readonly isCA?: boolean;
  /** expired, expires-soon, not-yet-valid, not-signed-by-ca */
  readonly flags: string[];
  readonly error?: { readonly code: string; readonly message: string };
}

/** The `.pem` files of the folder and of devices/, sorted; key files are told by their content, not their name. */
function pemFiles(dir: string): string[] {
  const out: string[] = [];
  for (const sub of ['', DEVICES_DIR]) {
    const d = join(dir, sub);
    let names: string[];
    try {
      names = readdirSync(d).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new BackhaulError('BH_CERT_READ', `cannot read the folder ${d}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { path: d });
    }
    for (const n of names) if (n.endsWith('.pem') && lstatSync(join(d, n)).isFile()) out.push(join(d, n));
  }
  return out;
}

async function listOne(file: string, caPem: string | undefined, now: number, dir: string): Promise<Listed | undefined> {
  const shownFile = relative(dir, file);
  let text: string;
  try {
    text = readText(file);
    const types = pemTypes(text);
    if (types.length > 0 && !types.includes('CERTIFICATE')) return undefined; // a key: nothing expires
    const info = await describeCertificate(text);
    const left = daysLeft(info, now);
    const flags: string[] = [];
    if (info.notAfter.getTime() <= now) flags.push('expired');
    else if (info.notAfter.getTime() - now < SOON_DAYS * DAY_MS) flags.push('expires-soon');
    if (info.notBefore.getTime() > now) flags.push('not-yet-valid');
    if (caPem !== undefined && !(await isSignedBy(text, caPem))) flags.push('not-signed-by-ca');
    return {
      file: shownFile,
      subject: info.subject,
      sans: info.sans,
      notBefore: info.notBefore.toISOString(),
      notAfter: info.notAfter.toISOString(),
      daysLeft: left,
      fingerprint256: info.fingerprint256,
      isCA: info.isCA,
      flags,
    };
  } catch (e) {
    if (!isBackhaulError(e)) throw e;
    return { file: shownFile, flags: ['unreadable'], error: { code: e.code, message: `${file}: ${e.detail}` } };
  }
}

async function list(c: Ctx): Promise<number> {
  if (c.args.length > 0) throw new UsageError('list takes no arguments');
  const caFile = join(c.dir, CA_FILE);
  let caPem: string | undefined;
  try {
    caPem = existsSync(caFile) ? readText(caFile) : undefined;
  } catch {
    caPem = undefined; // listed below as unreadable
  }
  const rows: Listed[] = [];
  for (const f of pemFiles(c.dir)) {
    const row = await listOne(f, caPem, c.now, c.dir);
    if (row) rows.push(row);
  }
  const bad = rows.filter((r) => r.error !== undefined);
  if (c.v.json) {
    c.io.out(json(rows));
  } else if (rows.length === 0) {
    c.io.out(`no certificates in ${c.dir} (backhaul certs init makes the CA)`);
  } else {
    c.io.out(
      table([
        ['FILE', 'SUBJECT', 'NAMES', 'EXPIRES', 'DAYS LEFT', 'FLAGS'],
        ...rows.map((r) => [
          r.file,
          r.subject ?? '-',
          r.sans && r.sans.length > 0 ? r.sans.join(',') : '-',
          r.notAfter !== undefined ? iso(Date.parse(r.notAfter)) : '-',
          r.daysLeft !== undefined ? String(r.daysLeft) : '-',
          r.flags.join(',') || '-',
        ]),
      ]),
    );
    const flagged = rows.filter((r) => r.flags.length > 0).length;
    c.io.out(`${rows.length} certificate${rows.length === 1 ? '' : 's'} in ${c.dir}${flagged > 0 ? `, ${flagged} flagged` : ''}`);
  }
  for (const r of bad) c.io.err(`${r.error!.code} ${r.error!.message}`);
  return bad.length > 0 ? 1 : 0;
}

export interface CertsRunOptions {
  readonly io?: Out;
  /** The clock (ms since the epoch); the real one by default. */
  readonly now?: () => number;
}

/** The certificates folder: `--dir DIR`, else `<data>/certs` of `--data DIR` or `-c FILE`. */
function certsDir(v: Values): string {
  if (v.dir !== undefined) return resolve(v.dir);
  if (v.data !== undefined) return join(resolve(v.data), 'certs');
  if (v.config !== undefined) return join(configDataDir(v.config), 'certs');
  throw new UsageError('certs needs -c FILE (the config, for its data folder), --data DIR or --dir DIR');
}

/** Run `backhaul certs …` (argv as given to `backhaul`); resolves with the exit code. */
export async function certsMain(argv: readonly string[], opts: CertsRunOptions = {}): Promise<number> {
  const io = opts.io ?? stdio;
  const line = subcommandLine(argv, OPTIONS, CERTS_HELP, io);
  if (typeof line === 'number') return line;
  const { values, cmd, args } = line;
  const commands: Record<string, (c: Ctx) => Promise<number>> = { init, server, device, list };
  const cmdFn = commands[cmd];
  if (!cmdFn) {
    io.err(`BH_USAGE unknown certs command "${cmd}"\n\n${CERTS_HELP}`);
    return 2;
  }
  return exitCode(io, () => cmdFn({ dir: certsDir(values), v: values, args, io, now: (opts.now ?? Date.now)() }));
}
