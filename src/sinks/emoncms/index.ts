// emoncms: the OpenEnergyMonitor input API. `post` mode sends one `input/post` per reading (node, fulljson, time);
// `bulk` mode sends one `input/bulk` per batch. Only numbers travel: booleans become 0/1, strings are left out,
// events are accepted and ignored (emoncms has no place for them).
import { TlsClientSchema, tlsConfigProblems } from '../../core/tls-client.js';
import { Type } from '@sinclair/typebox';
import { defineSink, SinkError, type SinkWriteResult } from '../../core/driver.js';
import { BackhaulError } from '../../core/errors.js';
import type { Message, Reading } from '../../core/types.js';
import { bodySnippet, HttpTarget, isRetryableStatus, redirectError, type HttpAnswer } from '../http-client.js';

const Options = Type.Object(
  {
    url: Type.String({
      pattern: '^[Hh][Tt][Tt][Pp][Ss]?://',
      urlCredentials: true,
      description: 'Base address of emoncms, e.g. `http://emoncms.lan` or `https://host/emoncms`.',
    }),
    apikey: Type.String({ minLength: 1, secret: true, description: 'Write API key (sent as `Authorization: Bearer`); use `{"secret": NAME}`.' }),
    mode: Type.Union([Type.Literal('post'), Type.Literal('bulk')], {
        default: 'post',
        description: '`post`: one `input/post` request per reading; `bulk`: one `input/bulk` request per batch.',
      }),
    nodes: Type.Optional(
      Type.Record(Type.String({ minLength: 1 }), Type.Union([Type.String({ minLength: 1 }), Type.Integer({ minimum: 0 })]), {
        description: 'device id → emoncms node name or number. Devices not listed use their device id as node name.',
      }),
    ),
    bulkColumns: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        minItems: 1,
        uniqueItems: true,
        description:
          'bulk mode: send these measurements as positional values (emoncms names them 1, 2, 3 ...); others go by name. ' +
          'Default: every value goes by name.',
      }),
    ),
    timeoutMs: Type.Integer({ minimum: 100, default: 10000, description: 'Give up on a request after this long.' }),
    tls: Type.Optional(TlsClientSchema),
  },
  { additionalProperties: false },
);

/** emoncms keeps letters, digits, `_`, `-`, `.` and white space in node and input names (Modules/input). */
export function emoncmsName(s: string): string {
  return s.replace(/[^\p{N}\p{L}_\s\-.]/gu, '');
}

/** The numbers of a reading as emoncms inputs: names cleaned, booleans as 0/1, strings and non-finite numbers left out. */
export function emoncmsInputs(r: Reading): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, v] of Object.entries(r.values)) {
    const key = emoncmsName(name);
    if (key === '') continue;
    if (typeof v === 'boolean') out[key] = v ? 1 : 0;
    else if (typeof v === 'number' && Number.isFinite(v)) out[key] = v;
  }
  return out;
}

const AUTH_MESSAGE = /api ?key|authenticat|unauthori[sz]ed|not authori|permission|login|access denied/i;

type Verdict = { ok: true } | { ok: false; message: string };

/** Read an emoncms answer: `ok` or `{"success": true}` is accepted, `{"success": false, ...}` or other text refused. */
function verdict(where: string, a: HttpAnswer): Verdict {
  const { status } = a;
  const text = a.body.trim();
  if (status >= 300 && status < 400) throw redirectError(where, status, a.headers.get('location'));
  if (isRetryableStatus(status)) throw new SinkError(`${where} answered ${status}${text ? `: ${bodySnippet(text)}` : ''}`, true);
  if (status === 401 || status === 403) {
    throw new SinkError(`${where} refused the API key (HTTP ${status}${text ? `: ${bodySnippet(text)}` : ''})`, false);
  }
  if (status >= 400) {
    throw new SinkError(`${where} answered ${status}${text ? `: ${bodySnippet(text)}` : ''} (check the url: the emoncms base address)`, false);
  }
  if (text.toLowerCase() === 'ok') return { ok: true };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (parsed === 'ok') return { ok: true };
  if (typeof parsed === 'object' && parsed !== null && 'success' in parsed) {
    if (parsed.success === true) return { ok: true };
    const m = 'message' in parsed && typeof parsed.message === 'string' ? parsed.message : JSON.stringify(parsed);
    if (AUTH_MESSAGE.test(m)) throw new SinkError(`${where} refused the API key: ${bodySnippet(m)}`, false);
    return { ok: false, message: m };
  }
  if (/^\s*</.test(text)) {
    throw new SinkError(`${where} answered with an HTML page, not the input API (check the url and the API key)`, false);
  }
  if (AUTH_MESSAGE.test(text)) throw new SinkError(`${where} refused the API key: ${bodySnippet(text)}`, false);
  return { ok: false, message: text === '' ? 'empty answer' : text };
}

export const emoncmsSink = defineSink({
  kind: 'sink',
  type: 'emoncms',
  description: 'Send numeric values to emoncms through its input API (input/post or input/bulk).',
  options: Options,
  check(o) {
    return tlsConfigProblems(o.tls, o.url);
  },
  create(o, ctx) {
    const { mode, timeoutMs } = o;
    const nodes = o.nodes ?? {};
    const columns = (o.bulkColumns ?? []).map(emoncmsName);
    const columnSet = new Set(columns);
    const base = new HttpTarget(o.url, 'emoncms', { options: o.tls, ctx });

    function endpoint(action: 'post' | 'bulk'): URL {
      const u = new URL(base.url);
      u.pathname = `${u.pathname.replace(/\/+$/, '')}/input/${action}`;
      return u;
    }

    function nodeOf(device: string): string {
      const mapped = nodes[device];
      return mapped === undefined ? emoncmsName(device).trim() : typeof mapped === 'number' ? String(mapped) : emoncmsName(mapped).trim();
    }

    async function send(action: 'post' | 'bulk', form: Record<string, string>): Promise<Verdict> {
      const answer = await base.send({ url: endpoint(action), method: 'POST', body: new URLSearchParams(form).toString(), timeoutMs });
      return verdict(base.where, answer);
    }

    function rejected(index: number, detail: string) {
      return { index, error: new BackhaulError('BH_SINK_REJECTED', detail) };
    }

    /**
     * A reading's node and numeric inputs; undefined for what is not sent (events, readings without numbers) and for
     * a device without a usable node name, which is added to `refused`.
     */
    function target(
      index: number,
      m: Message,
      refused: Array<{ index: number; error: BackhaulError }>,
    ): { node: string; inputs: ReturnType<typeof emoncmsInputs> } | undefined {
      if (m.kind !== 'reading') return undefined;
      const inputs = emoncmsInputs(m);
      if (Object.keys(inputs).length === 0) return undefined;
      const node = nodeOf(m.device);
      if (node === '') {
        refused.push(rejected(index, `device ${JSON.stringify(m.device)} has no usable emoncms node name; map it in nodes`));
        return undefined;
      }
      return { node, inputs };
    }

    async function writePost(batch: readonly Message[]): Promise<SinkWriteResult | void> {
      const refused: Array<{ index: number; error: BackhaulError }> = [];
      for (const [index, m] of batch.entries()) {
        const t = target(index, m, refused);
        if (!t) continue;
        const { node, inputs } = t;
        const v = await send('post', { node, fulljson: JSON.stringify(inputs), time: String(Math.floor(m.ts / 1000)) });
        if (!v.ok) refused.push(rejected(index, `emoncms refused node ${node}: ${bodySnippet(v.message)}`));
      }
      return refused.length > 0 ? { rejected: refused } : undefined;
    }

    async function writeBulk(batch: readonly Message[]): Promise<SinkWriteResult | void> {
      const refused: Array<{ index: number; error: BackhaulError }> = [];
      const rows: Array<Array<number | string | Record<string, number>>> = [];
      const sent: number[] = [];
      let ref: number | undefined;
      for (const [index, m] of batch.entries()) {
        const found = target(index, m, refused);
        if (!found) continue;
        const { node, inputs } = found;
        const t = Math.floor(m.ts / 1000);
        ref ??= t;
        // Positional values first (a missing one is "", which emoncms skips while keeping the positions), then the
        // rest by name as {"name": value}.
        const positional: Array<number | string> = columns.map((c) => inputs[c] ?? '');
        while (positional.length > 0 && positional[positional.length - 1] === '') positional.pop();
        const named = Object.entries(inputs)
          .filter(([k]) => !columnSet.has(k))
          .map(([k, v]) => ({ [k]: v }));
        const nodeField: number | string = /^\d+$/.test(node) ? Number(node) : node;
        rows.push([t - ref, nodeField, ...positional, ...named]);
        sent.push(index);
      }
      if (rows.length > 0 && ref !== undefined) {
        const v = await send('bulk', { data: JSON.stringify(rows), time: String(ref) });
        if (!v.ok) {
          const detail = `emoncms refused the bulk upload: ${bodySnippet(v.message)}`;
          for (const index of sent) refused.push(rejected(index, detail));
        }
      }
      refused.sort((a, b) => a.index - b.index);
      return refused.length > 0 ? { rejected: refused } : undefined;
    }

    return {
      async open() {
        await base.open({ Authorization: `Bearer ${o.apikey}`, 'Content-Type': 'application/x-www-form-urlencoded' }, true);
        ctx.logger.debug({ url: base.where, mode }, 'emoncms sink ready');
      },

      async write(batch) {
        base.assertOpen();
        return mode === 'bulk' ? writeBulk(batch) : writePost(batch);
      },

      close() {
        return base.close();
      },
    };
  },
});
