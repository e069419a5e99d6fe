// Test fixtures (test/fixtures, see its README), located from the compiled test files.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

export const fixture = (p: string): URL => new URL(`../../../test/fixtures/${p}`, import.meta.url);

/** The 2d1a valve log (2016H1) written uncompressed into `dir`; its path and its non-empty lines. */
export function valveLog(dir: string): { file: string; records: string[] } {
  const text = gunzipSync(readFileSync(fixture('opentrv/valve-2d1a-2016H1.json.gz'))).toString('utf8');
  const file = join(dir, '2d1a.json');
  writeFileSync(file, text);
  return { file, records: text.split('\n').filter((l) => l.trim() !== '') };
}
