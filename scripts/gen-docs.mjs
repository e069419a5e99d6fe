#!/usr/bin/env node
// Regenerates the generated parts of docs/config.md (driver option tables, from each driver's schema), every driver
// README's options table (between its `<!-- options:begin -->` and `<!-- options:end -->` markers, the same table)
// and docs/errors.md (from the error catalog). Run after `npm run build`: `npm run docs`. A test fails when they are
// stale (test/core/catalog.test.ts).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { driverDocs, renderConfigTables, renderErrors, withOptionsTable, OPTIONS_BEGIN, OPTIONS_END } from '../dist/src/cli/docs.js';

const BEGIN = '<!-- BEGIN GENERATED: drivers -->';
const END = '<!-- END GENERATED: drivers -->';
const config = readFileSync('docs/config.md', 'utf8');
const a = config.indexOf(BEGIN);
const b = config.indexOf(END);
if (a < 0 || b < a) throw new Error('docs/config.md lacks the generated-section markers');
writeFileSync('docs/config.md', `${config.slice(0, a + BEGIN.length)}\n${renderConfigTables()}\n${config.slice(b)}`);
// docs/events.md, from the map of event types (src/core/events.ts).
writeFileSync('docs/events.md', (await import('../dist/src/cli/events-doc.js')).renderEvents());
console.log('docs/events.md regenerated');
writeFileSync('docs/errors.md', renderErrors());

// A README that is missing or lacks its markers is not made up here: it is said, and the run fails.
const problems = [];
let written = 0;
for (const d of driverDocs()) {
  if (!existsSync(d.readme)) {
    problems.push(`${d.readme}: missing (every ${d.kind} needs one)`);
    continue;
  }
  const text = readFileSync(d.readme, 'utf8');
  const next = withOptionsTable(text, d.options);
  if (next === undefined) problems.push(`${d.readme}: needs ${OPTIONS_BEGIN} and ${OPTIONS_END} once each, in that order`);
  else if (next !== text) {
    writeFileSync(d.readme, next);
    written += 1;
  }
}
console.log(`docs/config.md and docs/errors.md regenerated; ${written} driver README options table(s) rewritten`);
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}
