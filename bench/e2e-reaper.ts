// The end-to-end benchmark's safety net (see e2e-lib.ts): told every process and temp folder the benchmark makes,
// and when the benchmark's process goes away (its IPC channel closes: normal exit, Ctrl-C, a SIGKILL), it kills those
// processes and removes those folders, then exits. Ignores SIGINT so a Ctrl-C cannot take it down first.
import { rmSync } from 'node:fs';

const pids = new Set<number>();
const dirs = new Set<string>();

process.on('SIGINT', () => undefined);
process.on('message', (m: { pid?: number; dir?: string; forgetPid?: number; forgetDir?: string }) => {
  if (m.pid !== undefined) pids.add(m.pid);
  if (m.dir !== undefined) dirs.add(m.dir);
  if (m.forgetPid !== undefined) pids.delete(m.forgetPid);
  if (m.forgetDir !== undefined) dirs.delete(m.forgetDir);
});
process.on('disconnect', () => {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  process.exit(0);
});
