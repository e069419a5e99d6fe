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
// A hung test fails after 5 minutes (Node ≥ 20.11 has --test-timeout). A test process that never exits (a failed hook
// leaving a listener open) would hang the run: the whole run is stopped after 20 minutes instead, and says so.
// (--test-force-exit is not used: it ends a file at its first pause between tests, e.g. a top-level await.)
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
const guards = major > 20 || (major === 20 && minor >= 11) ? ['--test-timeout=300000'] : [];
const RUN_LIMIT_MS = 20 * 60_000;
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...guards, ...files], { stdio: 'inherit', timeout: RUN_LIMIT_MS, killSignal: 'SIGKILL' });
if (r.error || r.signal) {
  console.error(`test run stopped after ${RUN_LIMIT_MS / 60_000} minutes (${r.error?.message ?? r.signal}): a test process did not exit`);
  process.exit(1);
}
process.exit(r.status ?? 1);
