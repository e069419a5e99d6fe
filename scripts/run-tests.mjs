#!/usr/bin/env node
// Runs every compiled test file with Node's own test runner. Node 20's `--test` takes no globs, so list them here.
// Usage: node scripts/run-tests.mjs [substring-filter ...]
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = walk('dist/test', []).filter((f) => filters.length === 0 || filters.some((s) => f.includes(s))).sort();
if (files.length === 0) {
  console.error('no test files found under dist/test (did the build run?)');
  process.exit(1);
}
// A test file whose hooks failed can leave a listener open and never exit: force the exit once its tests are done,
// and time out a test that hangs, so a run always ends (both flags exist from Node 20.14; older 20s run without them).
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
const guards = major > 20 || (major === 20 && minor >= 14) ? ['--test-force-exit', '--test-timeout=300000'] : [];
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...guards, ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
