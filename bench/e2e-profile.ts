// Summarise a V8 CPU profile (`node --cpu-prof`): self time summed by function (name + script + line), and by where
// the code lives (a Backhaul source file, a dependency, Node's internals, the garbage collector, idle). Lines of
// Backhaul's compiled files are mapped back to the TypeScript through their source maps.
//
//   node dist/bench/e2e-profile.js FILE.cpuprofile [--top N]     (the benchmark calls summariseProfile itself)
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ROOT, round1, table } from './e2e-lib.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface HotSpot {
  /** Function name, or (anonymous). */
  readonly fn: string;
  /** file:line, mapped to the TypeScript source for Backhaul's own code. */
  readonly where: string;
  /** Self time, ms, and its share of the busy (non-idle) time. */
  readonly selfMs: number;
  readonly pct: number;
  /** Where in Backhaul's own code (src/) the time was spent from: the nearest src/ frame on the stack, by share. */
  readonly via: Array<{ fn: string; where: string; pct: number }>;
}

export interface ProfileSummary {
  readonly file: string;
  readonly totalMs: number;
  readonly idleMs: number;
  readonly busyMs: number;
  readonly top: HotSpot[];
  /** Self time by area: a Backhaul source file, a dependency package, node internals, GC, program. */
  readonly byArea: Array<{ area: string; selfMs: number; pct: number }>;
}

const maps = new Map<string, SourceMap | null>();

function sourceMapFor(jsPath: string): SourceMap | null {
  let m = maps.get(jsPath);
  if (m === undefined) {
    m = null;
    const mapPath = `${jsPath}.map`;
    if (existsSync(mapPath)) {
      try {
        m = new SourceMap(JSON.parse(readFileSync(mapPath, 'utf8')) as ConstructorParameters<typeof SourceMap>[0]);
      } catch {
        m = null;
      }
    }
    maps.set(jsPath, m);
  }
  return m;
}

/** A readable location: repository-relative, TypeScript line for Backhaul's compiled code. Lines are 1-based. */
function locate(cf: CallFrame): { where: string; area: string } {
  const { url, lineNumber, columnNumber } = cf;
  if (url === '') return { where: '', area: cf.functionName.startsWith('(') ? cf.functionName : '(native)' };
  if (url.startsWith('node:')) return { where: `${url}:${lineNumber + 1}`, area: 'node internals' };
  if (!url.startsWith('file://')) return { where: `${url}:${lineNumber + 1}`, area: url };
  const path = fileURLToPath(url);
  const rel = relative(ROOT, path);
  const nm = rel.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = rel.slice(nm + 'node_modules/'.length).split('/');
    const pkg = rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? '?');
    return { where: `${rel.slice(nm)}:${lineNumber + 1}`, area: pkg };
  }
  if (rel.startsWith('dist/')) {
    const sm = sourceMapFor(path);
    // Node 20 answers {} when the line has no mapping.
    const e: Partial<{ originalSource: string; originalLine: number }> | undefined = sm?.findEntry(lineNumber, columnNumber);
    if (e?.originalSource !== undefined && e.originalLine !== undefined) {
      // Sources are relative to the map's folder (or file URLs).
      const abs = e.originalSource.startsWith('file://') ? fileURLToPath(e.originalSource) : resolve(dirname(path), e.originalSource);
      const src = relative(ROOT, abs);
      return { where: `${src}:${e.originalLine + 1}`, area: src };
    }
  }
  return { where: `${rel}:${lineNumber + 1}`, area: rel };
}

export function summariseProfile(file: string, topN = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  // Sample i lasts until sample i+1 (as DevTools counts it); the last one gets the mean interval.
  const selfUs = new Map<number, number>();
  const n = p.samples.length;
  let sum = 0;
  for (let i = 1; i < p.timeDeltas.length; i++) sum += p.timeDeltas[i]!;
  const mean = p.timeDeltas.length > 1 ? sum / (p.timeDeltas.length - 1) : 0;
  for (let i = 0; i < n; i++) {
    const d = i + 1 < n ? p.timeDeltas[i + 1]! : mean;
    const id = p.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, d));
  }
  const parent = new Map<number, number>();
  for (const node of p.nodes) for (const c of node.children ?? []) parent.set(c, node.id);
  const located = new Map<number, { where: string; area: string }>();
  const loc = (node: ProfileNode) => {
    let l = located.get(node.id);
    if (!l) located.set(node.id, (l = locate(node.callFrame)));
    return l;
  };
  /** The nearest frame at or above `id` that is Backhaul's own code (src/...). */
  const ownFrame = (id: number): string | undefined => {
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const node = byId.get(cur);
      if (!node) return undefined;
      const l = loc(node);
      if (l.where.startsWith('src/')) return `${node.callFrame.functionName || '(anonymous)'}\u0000${l.where}`;
    }
    return undefined;
  };
  const fns = new Map<string, { fn: string; where: string; us: number; via: Map<string, number> }>();
  const areas = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    totalUs += us;
    const cf = node.callFrame;
    if (cf.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const { where, area } = loc(node);
    const fn = cf.functionName || '(anonymous)';
    const key = `${fn}\u0000${where}`;
    const e = fns.get(key) ?? { fn, where, us: 0, via: new Map<string, number>() };
    e.us += us;
    const own = ownFrame(id);
    if (own !== undefined && own !== key) e.via.set(own, (e.via.get(own) ?? 0) + us);
    fns.set(key, e);
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs;
  const pct = (us: number) => (busyUs > 0 ? round1((us / busyUs) * 100) : 0);
  const top = [...fns.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, topN)
    .map((e) => ({
      fn: e.fn,
      where: e.where,
      selfMs: round1(e.us / 1000),
      pct: pct(e.us),
      via: [...e.via]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 3)
        .map(([k, us]) => {
          const [fn, where] = k.split('\u0000') as [string, string];
          return { fn, where, pct: round1((us / e.us) * 100) };
        }),
    }));
  const byArea = [...areas]
    .sort((a, b) => b[1] - a[1])
    .slice(0, topN)
    .map(([area, us]) => ({ area, selfMs: round1(us / 1000), pct: pct(us) }));
  return { file, totalMs: round1(totalUs / 1000), idleMs: round1(idleUs / 1000), busyMs: round1(busyUs / 1000), top, byArea };
}

export function formatProfile(s: ProfileSummary, topAreas = 12): string {
  const out: string[] = [];
  out.push(`profile ${s.file}: ${s.totalMs.toLocaleString('en-US')} ms sampled, ${s.busyMs.toLocaleString('en-US')} ms busy (not idle); % of busy time`);
  out.push('');
  out.push(
    table([
      ['self ms', '%', 'function', 'where', 'called from Backhaul code (share of its time)'],
      ...s.top.map((h) => [
        h.selfMs.toFixed(1),
        h.pct.toFixed(1),
        h.fn,
        h.where,
        h.via
          .slice(0, 3)
          .map((v) => `${v.fn} ${v.where} (${v.pct.toFixed(0)}%)`)
          .join(', '),
      ]),
    ]),
  );
  out.push('');
  out.push(table([['self ms', '%', 'area (file or package)'], ...s.byArea.slice(0, topAreas).map((a) => [a.selfMs.toFixed(1), a.pct.toFixed(1), a.area])]));
  return out.join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } });
  const file = positionals[0];
  if (file === undefined) {
    process.stderr.write('usage: node dist/bench/e2e-profile.js FILE.cpuprofile [--top N]\n');
    process.exit(2);
  }
  process.stdout.write(`${formatProfile(summariseProfile(file, Number(values.top)))}\n`);
}
