// `backhaul codecs test FILE-codec.yaml`: runs the examples of a codec description in The Things Network device
// repository's format (`uplinkDecoder: {fileName, examples: [{description?, input: {fPort, bytes}, output: {data |
// errors}}]}`, `downlinkEncoder` the same with `input: {data}` and `output: {bytes, fPort} | {errors}`) through the
// codec in Backhaul's sandbox, and prints pass or fail per example, so a vendor's codec can be checked before it is
// deployed. Exit 0 when every example passes, 1 otherwise, 2 for usage.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { BackhaulError, isBackhaulError } from '../core/errors.js';
import { Codec, loadCodecEngine } from '../decoders/codecs.js';
import { exitCode, stdio, UsageError, type Out } from './io.js';

export const CODECS_HELP = `backhaul codecs — vendor payload codecs (device-repository format), run in Backhaul's sandbox

Usage: backhaul codecs test FILE-codec.yaml [--json]
  test FILE   run the codec description's uplinkDecoder and downlinkEncoder examples; print pass/fail per example

The YAML names the codec's JavaScript file (fileName, relative to the YAML file).`;

interface Example {
  readonly description?: string;
  readonly input?: { readonly fPort?: number; readonly bytes?: readonly number[]; readonly data?: Record<string, unknown>; readonly recvTime?: string };
  readonly output?: { readonly data?: unknown; readonly errors?: readonly string[]; readonly bytes?: readonly number[]; readonly fPort?: number; readonly warnings?: readonly string[] };
}

interface Section {
  readonly fileName?: string;
  readonly examples?: readonly Example[];
}

export interface ExampleResult {
  readonly section: 'uplinkDecoder' | 'downlinkEncoder';
  readonly index: number;
  readonly description: string;
  readonly pass: boolean;
  /** What differed, when it failed. */
  readonly detail?: string;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every example of a codec description, run; BH_CODEC_LOAD (or BH_CONFIG_READ) when the files cannot be used. */
export async function testCodecDescription(file: string): Promise<ExampleResult[]> {
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new BackhaulError('BH_CONFIG_READ', `cannot read ${file}: ${(e as Error).message}`);
  }
  if (!isRecord(doc)) throw new BackhaulError('BH_CONFIG_READ', `${file} is not a codec description (a YAML mapping with uplinkDecoder)`);
  const engine = await loadCodecEngine();
  const codecs = new Map<string, Codec>();
  const codecOf = (s: Section, key: string): Codec => {
    if (typeof s.fileName !== 'string') throw new BackhaulError('BH_CODEC_LOAD', `${key}.fileName is missing`, { path: `${key}.fileName` });
    const path = resolve(dirname(file), s.fileName);
    let c = codecs.get(path);
    if (!c) {
      let source: string;
      try {
        source = readFileSync(path, 'utf8');
      } catch (e) {
        throw new BackhaulError('BH_CODEC_LOAD', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { path: `${key}.fileName` });
      }
      c = new Codec(engine, s.fileName.replace(/\.js$/, ''), source);
      codecs.set(path, c);
    }
    return c;
  };
  const results: ExampleResult[] = [];
  try {
    for (const key of ['uplinkDecoder', 'downlinkEncoder'] as const) {
      const s = doc[key];
      if (s === undefined) continue;
      if (!isRecord(s)) throw new BackhaulError('BH_CONFIG_READ', `${key} must be a mapping`, { path: key });
      const section = s as Section;
      const codec = codecOf(section, key);
      (section.examples ?? []).forEach((ex, index) => {
        const description = ex.description ?? `example ${index + 1}`;
        const want = ex.output ?? {};
        let got: Record<string, unknown>;
        try {
          if (key === 'uplinkDecoder') {
            const r = codec.decodeUplink({ bytes: ex.input?.bytes ?? [], fPort: ex.input?.fPort ?? 1, ...(ex.input?.recvTime !== undefined ? { recvTime: ex.input.recvTime } : {}) });
            got = { data: r.data, ...(r.warnings.length > 0 ? { warnings: r.warnings } : {}) };
          } else {
            const r = codec.encodeDownlink({ data: ex.input?.data ?? {}, ...(ex.input?.fPort !== undefined ? { fPort: ex.input.fPort } : {}) });
            got = { bytes: [...r.bytes], ...(r.fPort !== undefined ? { fPort: r.fPort } : {}), ...(r.warnings.length > 0 ? { warnings: r.warnings } : {}) };
          }
        } catch (e) {
          if (!isBackhaulError(e)) throw e;
          // A codec that answers `errors` passes an example that expects exactly those errors.
          got = e.code === 'BH_CODEC_ERRORS' ? { errors: errorsOf(e.detail) } : { thrown: `${e.code} ${e.detail}` };
        }
        const expected: Record<string, unknown> = {};
        for (const k of ['data', 'errors', 'bytes', 'fPort', 'warnings'] as const) if (want[k] !== undefined) expected[k] = want[k];
        const compared = Object.fromEntries(Object.keys(expected).map((k) => [k, got[k]]));
        const pass = !('thrown' in got) && isDeepStrictEqual(compared, expected);
        results.push({ section: key, index, description, pass, ...(pass ? {} : { detail: `expected ${JSON.stringify(expected)}, got ${JSON.stringify(got)}` }) });
      });
    }
  } finally {
    for (const c of codecs.values()) c.dispose();
  }
  return results;
}

/** BH_CODEC_ERRORS's detail is `codec NAME: decodeUplink: a; b`: the codec's own errors back. */
function errorsOf(detail: string): string[] {
  const m = /^codec [^:]+: \w+: (.*)$/s.exec(detail);
  return (m?.[1] ?? detail).split('; ');
}

export function isCodecsCommand(argv: readonly string[]): boolean {
  return argv[0] === 'codecs';
}

export async function codecsMain(argv: readonly string[], io: Out = stdio): Promise<number> {
  const [, cmd, ...rest] = argv;
  const jsonOut = rest.includes('--json');
  const files = rest.filter((a) => a !== '--json');
  if (cmd === undefined || cmd === '--help' || cmd === '-h') {
    io.out(CODECS_HELP);
    return cmd === undefined ? 2 : 0;
  }
  return exitCode(io, async () => {
    if (cmd !== 'test') throw new UsageError(`unknown codecs command "${cmd}"\n\n${CODECS_HELP}`);
    if (files.length !== 1) throw new UsageError('codecs test takes one codec description (FILE-codec.yaml)');
    const results = await testCodecDescription(resolve(files[0]!));
    if (jsonOut) io.out(JSON.stringify(results, null, 2));
    else {
      for (const r of results) io.out(`${r.pass ? 'pass' : 'FAIL'}  ${r.section} ${r.description}${r.detail !== undefined ? `\n      ${r.detail}` : ''}`);
      const failed = results.filter((r) => !r.pass).length;
      io.out(`${results.length} example(s): ${results.length - failed} passed, ${failed} failed`);
    }
    return results.every((r) => r.pass) ? 0 : 1;
  });
}
