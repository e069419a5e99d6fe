// `backhaul devices import FILE`: bulk provisioning from a manifest (src/devices/manifest.ts), or a dry run of it.
import { readFileSync } from 'node:fs';
import { BackhaulError } from '../../core/errors.js';
import { importManifest } from '../../devices/manifest.js';
import { claimWindowMs } from '../../devices/provision.js';
import { iso, json, table, UsageError } from '../io.js';
import { actor, type Ctx } from './shared.js';

export async function importCmd(c: Ctx): Promise<number> {
  const file = c.args[0];
  if (file === undefined || c.args.length > 1) throw new UsageError('import takes one manifest file');
  const format = c.v.format;
  if (format !== undefined && format !== 'csv' && format !== 'jsonl') throw new UsageError('--format must be csv or jsonl');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new BackhaulError('BH_MANIFEST_FORMAT', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const dryRun = c.v['dry-run'] ?? false;
  const window = c.v['claim-window'];
  const report = await importManifest(c.store, text, {
    dryRun,
    actor: actor(),
    source: file,
    ...(format !== undefined ? { format } : {}),
    ...(window !== undefined ? { claimWindowMs: claimWindowMs(window, 'claim-window') } : {}),
  });
  const failed = report.counts.error > 0 ? 1 : 0;
  if (c.v.json) {
    c.io.out(
      json({
        format: report.format,
        dryRun,
        counts: report.counts,
        ...(report.claimWindow ? { claimWindow: report.claimWindow } : {}),
        rows: report.rows.map((r) => ({
          line: r.line,
          ...(r.id !== undefined ? { id: r.id } : {}),
          status: r.status,
          ...(r.changed ? { changed: r.changed } : {}),
          ...(r.error ? { error: { code: r.error.code, column: r.error.path ?? null, message: r.error.detail } } : {}),
        })),
      }),
    );
    return failed;
  }
  const would = dryRun ? { created: 'would create', updated: 'would update', unchanged: 'unchanged', error: 'error' } : undefined;
  c.io.out(
    table(
      report.rows.map((r) => [
        `line ${r.line}`,
        would ? would[r.status] : r.status,
        r.error ? r.error.toString() : `${r.id ?? ''}${r.changed?.length ? ` (${r.changed.join(', ')})` : ''}`,
      ]),
    ) || 'the manifest has no rows',
  );
  const n = report.rows.length;
  const k = report.counts;
  c.io.out(
    `${n} row${n === 1 ? '' : 's'}: ${k.created} created, ${k.updated} updated, ${k.unchanged} unchanged, ${k.error} failed` +
      (dryRun ? ' (dry run: nothing was changed)' : ''),
  );
  if (report.claimWindow) {
    const n = report.claimWindow.devices.length;
    c.io.out(`claim window open until ${iso(report.claimWindow.until)} for ${n} device${n === 1 ? '' : 's'} waiting for their first password`);
  }
  return failed;
}
