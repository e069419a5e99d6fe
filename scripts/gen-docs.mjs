#!/usr/bin/env node
// Regenerates the generated parts of docs/config.md (driver option tables, from each driver's schema) and
// docs/errors.md (from the error catalog). Run after `npm run build`: `npm run docs`. A test fails when they are stale.
import { readFileSync, writeFileSync } from 'node:fs';
import { renderConfigTables, renderErrors } from '../dist/src/cli/docs.js';

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
console.log('docs/config.md and docs/errors.md regenerated');
