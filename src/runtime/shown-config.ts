// The loaded config as it may be shown (the API, `backhaul check`, the log): the tree as written with every secret
// that the top-level schema or a driver's own schema marks replaced (src/core/config/redact.ts does the redacting).
import { ConfigFile } from '../core/config/schema.js';
import { isObject, redactWith, type InlineSecret } from '../core/config/redact.js';
import { MIN_SECRET_LENGTH } from '../core/config/secrets.js';
import { joinPath } from '../core/errors.js';
import type { LoadedConfig } from './config.js';

export interface ShownConfig {
  /** The config as written, every secret redacted or a reference. */
  readonly tree: unknown;
  readonly inline: readonly InlineSecret[];
}

const shownCache = new WeakMap<LoadedConfig, ShownConfig>();

/**
 * The config as it may be shown: the tree as written (`cfg.redacted`, references unresolved), with what the top-level
 * schema and each driver's own schema mark secret replaced. Computed once per loaded config.
 */
export function shownConfig(cfg: LoadedConfig): ShownConfig {
  const cached = shownCache.get(cfg);
  if (cached) return cached;
  const found: InlineSecret[] = [];
  let tree = redactWith(ConfigFile, cfg.redacted, '', found);
  if (isObject(tree)) {
    const t = { ...tree };
    const inputs = isObject(t['inputs']) ? { ...t['inputs'] } : undefined;
    for (const spec of cfg.inputs) {
      const inst = inputs?.[spec.id];
      if (!inputs || !isObject(inst)) continue;
      const path = joinPath('inputs', spec.id);
      const redacted = { ...(redactWith(spec.def.options, inst, path, found) as Record<string, unknown>) };
      if (isObject(inst['decoder'])) redacted['decoder'] = redactWith(spec.decoder.def.options, inst['decoder'], joinPath(path, 'decoder'), found);
      inputs[spec.id] = redacted;
    }
    if (inputs) t['inputs'] = inputs;
    const sinks = isObject(t['sinks']) ? { ...t['sinks'] } : undefined;
    for (const spec of cfg.sinks) {
      if (sinks && isObject(sinks[spec.id])) sinks[spec.id] = redactWith(spec.def.options, sinks[spec.id], joinPath('sinks', spec.id), found);
    }
    if (sinks) t['sinks'] = sinks;
    if (Array.isArray(t['routes'])) {
      const routes = [...(t['routes'] as unknown[])];
      for (const r of cfg.routes) {
        const raw = routes[r.index];
        if (!isObject(raw) || !Array.isArray(raw['stages'])) continue;
        const stages = [...(raw['stages'] as unknown[])];
        r.stages.forEach((st, j) => (stages[j] = redactWith(st.def.options, stages[j], st.path, found)));
        routes[r.index] = { ...raw, stages };
      }
      t['routes'] = routes;
    }
    tree = t;
  }
  const shown = { tree, inline: found };
  shownCache.set(cfg, shown);
  return shown;
}

/** Inline secret values long enough to scrub from log lines (shorter ones would shred them; `check` warns). */
export function inlineSecretValues(cfg: LoadedConfig): string[] {
  return shownConfig(cfg)
    .inline.map((s) => s.value)
    .filter((v) => v.length >= MIN_SECRET_LENGTH);
}

/** `check`'s warnings: one per secret written inline. */
export function inlineSecretWarnings(cfg: LoadedConfig): string[] {
  return shownConfig(cfg).inline.map(
    (s) => `${s.path}: a secret written inline; write {"secret": "NAME"} and keep the value in the credentials file or BACKHAUL_SECRET_NAME`,
  );
}
