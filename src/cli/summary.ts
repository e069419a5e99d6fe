// `backhaul check` output: what would run, with secrets shown as their names only.
import type { LoadedConfig } from '../runtime/config.js';
import { inlineSecretWarnings, shownConfig } from '../runtime/shown-config.js';
import { isSecretRef } from '../core/config/secrets.js';

function show(v: unknown): string {
  if (isSecretRef(v)) return `<secret ${v.secret}>`;
  if (Array.isArray(v)) return `[${v.map(show).join(', ')}]`;
  if (typeof v === 'object' && v !== null) {
    return `{${Object.entries(v)
      .map(([k, x]) => `${k}: ${show(x)}`)
      .join(', ')}}`;
  }
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** Options as written (from the shown tree: references as names, inline secrets redacted), so no secret is printed. */
function written(raw: unknown, section: 'inputs' | 'sinks', id: string, skip: readonly string[]): string {
  const inst = (raw as Record<string, Record<string, Record<string, unknown>>>)[section]?.[id] ?? {};
  return Object.entries(inst)
    .filter(([k]) => !skip.includes(k))
    .map(([k, v]) => `${k}=${show(v)}`)
    .join(' ');
}

function pad(s: string, n: number): string {
  return s.length >= n ? `${s} ` : s + ' '.repeat(n - s.length);
}

/** `extraWarnings`: things found outside the config itself (queues of removed sinks in the data folder). */
export function summarize(cfg: LoadedConfig, extraWarnings: readonly string[] = []): string {
  const lines: string[] = [];
  lines.push(`config ${cfg.source} is valid`);
  lines.push(`data folder: ${cfg.dataDir}`);
  lines.push('');
  lines.push(`inputs (${cfg.inputs.length}):`);
  for (const i of cfg.inputs) {
    lines.push(`  ${pad(i.id, 14)}${pad(i.def.type, 10)}decoder ${pad(i.decoder.def.type, 9)}${written(shownConfig(cfg).tree, 'inputs', i.id, ['type', 'decoder'])}`);
  }
  lines.push(`routes (${cfg.routes.length}):`);
  for (const r of cfg.routes) {
    const m = r.match;
    const what: string[] = [];
    if (m.kind && m.kind !== 'reading') what.push(`kind ${m.kind}`);
    if (m.devices) what.push(`devices ${m.devices.join(',')}`);
    if (m.inputs) what.push(`inputs ${m.inputs.join(',')}`);
    if (m.topics) what.push(`topics ${m.topics.join(',')}`);
    if (m.measurements) what.push(`measurements ${m.measurements.join(',')}`);
    if (m.events) what.push(`events ${m.events.join(',')}`);
    if (m.authenticated !== undefined) what.push(m.authenticated ? 'authenticated only' : 'unauthenticated only');
    const stages = r.stages.length ? ` | ${r.stages.map((s) => s.def.type).join(' → ')}` : '';
    lines.push(`  ${pad(r.name, 20)}${what.length ? what.join('; ') : `all ${m.kind === 'event' ? 'events' : m.kind === 'any' ? 'messages' : 'readings'}`}${stages} → ${r.to.join(', ')}`);
  }
  lines.push(`sinks (${cfg.sinks.length}):`);
  for (const s of cfg.sinks) {
    lines.push(`  ${pad(s.id, 14)}${pad(s.def.type, 10)}${written(shownConfig(cfg).tree, 'sinks', s.id, ['type'])}`);
  }
  const dv = cfg.devices;
  const declared = dv.declared.length ? `, ${dv.declared.length} declared in this file (${dv.declared.filter((d) => d.password !== undefined).length} with a login)` : '';
  const prefix = dv.topics.prefix !== undefined ? `, topics under ${dv.topics.prefix}/` : '';
  const gateways = dv.gateways.length ? `, gateways ${dv.gateways.map((g) => `${g.login} (${g.devices.join(',')})`).join('; ')}` : '';
  lines.push(`devices: unknown ones ${dv.unknown === 'register' ? 'registered' : dv.unknown === 'quarantine' ? 'quarantined' : 'dropped'}${declared}${gateways}${prefix}`);
  if (cfg.api) lines.push(`api: http://${cfg.api.host}:${cfg.api.port}${cfg.api.bootstrap ? ' (device bootstrap on /bootstrap/v1)' : ''}${cfg.api.mosquittoGoAuth ? ' (mosquitto-go-auth on /auth/mosquitto)' : ''}`);
  if (cfg.brokerSync) {
    // The URL as shown (a password in it redacted), from the shown tree.
    const shownUrl = (shownConfig(cfg).tree as { brokerSync?: { url?: unknown } }).brokerSync?.url;
    lines.push(`broker sync: ${cfg.brokerSync.type} at ${typeof shownUrl === 'string' ? shownUrl : '?'} as ${cfg.brokerSync.username} (docs/tls.md)`);
  }
  const warnings = [...cfg.warnings, ...inlineSecretWarnings(cfg), ...extraWarnings];
  if (warnings.length) {
    lines.push('');
    lines.push('warnings:');
    for (const w of warnings) lines.push(`  ${w}`);
  }
  return lines.join('\n');
}
