// Payload codecs as vendors publish them (The Things Network device repository; ChirpStack v4 uses the same): a
// JavaScript file defining `decodeUplink({bytes, fPort, recvTime}) → {data, warnings, errors}` and optionally
// `encodeDownlink({data, fPort}) → {bytes, fPort, warnings, errors}`, used unchanged. They are third-party code, so
// each runs in QuickJS compiled to WebAssembly, in a runtime of its own with a memory limit, a stack limit and a
// deadline per call; it sees no host object: only JSON text crosses, in both directions, and the host parses what
// comes back. A codec that throws, loops, allocates without end or returns `errors` gives a coded error for that
// call, and nothing else; after a deadline or running out of memory its runtime is made anew.
import { newQuickJSWASMModuleFromVariant, shouldInterruptAfterDeadline, type QuickJSContext, type QuickJSHandle, type QuickJSRuntime, type QuickJSWASMModule } from 'quickjs-emscripten-core';
import { BackhaulError } from '../core/errors.js';

export interface CodecLimits {
  /** Memory of one codec's runtime (bytes). Default 16 MiB. */
  readonly memoryBytes?: number;
  /** Longest one call may run (ms). Default 50. */
  readonly timeoutMs?: number;
  /** Stack of one codec's runtime (bytes). Default 256 KiB. */
  readonly stackBytes?: number;
}

export interface UplinkInput {
  readonly bytes: readonly number[];
  readonly fPort: number;
  /** ISO 8601. */
  readonly recvTime?: string;
}

export interface DecodedUplink {
  readonly data: Record<string, unknown>;
  readonly warnings: readonly string[];
}

export interface DownlinkInput {
  readonly data: Record<string, unknown>;
  readonly fPort?: number;
}

export interface EncodedDownlink {
  readonly bytes: Uint8Array;
  readonly fPort: number | undefined;
  readonly warnings: readonly string[];
}

/** The WebAssembly module codecs run in: load it once (it takes tens of ms) and make every codec from it. */
export async function loadCodecEngine(): Promise<QuickJSWASMModule> {
  // The promise of the module, as the variant's loader expects it (PromisedDefault); the .wasm file is in the package.
  return newQuickJSWASMModuleFromVariant(import('@jitl/quickjs-wasmfile-release-sync'));
}

const MAX_OUTPUT_CHARS = 1 << 20;

// Wraps the codec's functions so that only JSON text goes in and out. `__bh` is defined after the codec's own code,
// so the codec cannot replace it before it is taken (it may replace JSON in its own realm: then it harms only itself).
const BRIDGE = `
(function () {
  var decode = typeof decodeUplink === 'function' ? decodeUplink : undefined;
  var encode = typeof encodeDownlink === 'function' ? encodeDownlink : undefined;
  var parse = JSON.parse, stringify = JSON.stringify;
  function call(f, s) {
    var out = f(parse(s));
    var text = stringify(out === undefined ? null : out);
    return text === undefined ? 'null' : text;
  }
  return {
    decode: decode && function (s) { return call(decode, s); },
    encode: encode && function (s) { return call(encode, s); },
  };
})()
`;

/** One vendor codec in its own sandbox. `dispose()` frees its runtime. */
export class Codec {
  private runtime!: QuickJSRuntime;
  private context!: QuickJSContext;
  private decodeFn: QuickJSHandle | undefined;
  private encodeFn: QuickJSHandle | undefined;
  private readonly memoryBytes: number;
  private readonly timeoutMs: number;
  private readonly stackBytes: number;

  /** Throws BH_CODEC_LOAD when the source does not evaluate or defines no decodeUplink. */
  constructor(
    private readonly engine: QuickJSWASMModule,
    readonly name: string,
    private readonly source: string,
    limits: CodecLimits = {},
  ) {
    this.memoryBytes = limits.memoryBytes ?? 16 * 1024 * 1024;
    this.timeoutMs = limits.timeoutMs ?? 50;
    this.stackBytes = limits.stackBytes ?? 256 * 1024;
    this.boot();
  }

  /** Whether the codec defines encodeDownlink. */
  get encodes(): boolean {
    return this.encodeFn !== undefined;
  }

  private boot(): void {
    this.runtime = this.engine.newRuntime();
    this.runtime.setMemoryLimit(this.memoryBytes);
    this.runtime.setMaxStackSize(this.stackBytes);
    this.context = this.runtime.newContext();
    this.runtime.setInterruptHandler(shouldInterruptAfterDeadline(Date.now() + this.timeoutMs * 10)); // loading may take longer
    try {
      const loaded = this.context.evalCode(this.source, `${this.name}.js`);
      if (loaded.error) {
        const why = this.errorText(loaded.error);
        loaded.error.dispose();
        throw new BackhaulError('BH_CODEC_LOAD', `codec ${this.name} does not load: ${why}`, { path: this.name });
      }
      loaded.value.dispose();
      const bridge = this.context.evalCode(BRIDGE, 'backhaul-bridge.js');
      if (bridge.error) {
        const why = this.errorText(bridge.error);
        bridge.error.dispose();
        throw new BackhaulError('BH_CODEC_LOAD', `codec ${this.name} does not load: ${why}`, { path: this.name });
      }
      const dec = this.context.getProp(bridge.value, 'decode');
      const enc = this.context.getProp(bridge.value, 'encode');
      bridge.value.dispose();
      if (this.context.typeof(dec) !== 'function') {
        dec.dispose();
        enc.dispose();
        throw new BackhaulError('BH_CODEC_LOAD', `codec ${this.name} defines no decodeUplink function`, { path: this.name });
      }
      this.decodeFn = dec;
      if (this.context.typeof(enc) === 'function') this.encodeFn = enc;
      else enc.dispose();
    } catch (e) {
      this.free();
      throw e;
    }
  }

  private free(): void {
    this.decodeFn?.dispose();
    this.encodeFn?.dispose();
    this.decodeFn = undefined;
    this.encodeFn = undefined;
    this.context.dispose();
    this.runtime.dispose();
  }

  dispose(): void {
    this.free();
  }

  private errorText(h: QuickJSHandle): string {
    try {
      const e = this.context.dump(h) as unknown;
      if (typeof e === 'object' && e !== null && 'message' in e) {
        const o = e as { name?: unknown; message?: unknown };
        return `${typeof o.name === 'string' ? `${o.name}: ` : ''}${String(o.message)}`.slice(0, 300);
      }
      return String(e).slice(0, 300);
    } catch {
      return 'an error that cannot be shown';
    }
  }

  /** Call one bridge function with JSON text; the parsed JSON result, or a coded error. */
  private call(fn: QuickJSHandle, what: string, input: unknown): unknown {
    this.runtime.setInterruptHandler(shouldInterruptAfterDeadline(Date.now() + this.timeoutMs));
    const arg = this.context.newString(JSON.stringify(input));
    let result;
    try {
      result = this.context.callFunction(fn, this.context.undefined, arg);
    } finally {
      arg.dispose();
    }
    if (result.error) {
      const why = this.errorText(result.error);
      result.error.dispose();
      if (/interrupted/i.test(why)) {
        this.restart();
        throw new BackhaulError('BH_CODEC_TIMEOUT', `codec ${this.name}: ${what} ran longer than ${this.timeoutMs} ms`, { path: this.name });
      }
      if (/out of memory|stack overflow/i.test(why)) {
        this.restart();
        throw new BackhaulError('BH_CODEC_MEMORY', `codec ${this.name}: ${what} ran out of memory or stack (${why})`, { path: this.name });
      }
      throw new BackhaulError('BH_CODEC_FAILED', `codec ${this.name}: ${what} threw ${why}`, { path: this.name });
    }
    const text = this.context.typeof(result.value) === 'string' ? this.context.getString(result.value) : undefined;
    result.value.dispose();
    if (text === undefined || text.length > MAX_OUTPUT_CHARS) {
      throw new BackhaulError('BH_CODEC_OUTPUT', `codec ${this.name}: ${what} returned no JSON text (or more than 1 MiB)`, { path: this.name });
    }
    return JSON.parse(text) as unknown;
  }

  /** After an interrupt or running out of memory the runtime may be left half-way: start from the source again. */
  private restart(): void {
    this.free();
    this.boot();
  }

  /** Decode one uplink. BH_CODEC_* errors: FAILED (threw), TIMEOUT, MEMORY, OUTPUT (not `{data}`), ERRORS (it said so). */
  decodeUplink(input: UplinkInput): DecodedUplink {
    const out = this.call(this.decodeFn!, 'decodeUplink', input);
    const o = checkResult(out, this.name, 'decodeUplink');
    const data = o['data'];
    if (typeof data !== 'object' || data === null || Array.isArray(data)) {
      throw new BackhaulError('BH_CODEC_OUTPUT', `codec ${this.name}: decodeUplink returned no data object`, { path: `${this.name}.data` });
    }
    return { data: data as Record<string, unknown>, warnings: stringsOf(o['warnings']) };
  }

  /** Encode one downlink; BH_CODEC_UNSUPPORTED when the codec has no encodeDownlink. */
  encodeDownlink(input: DownlinkInput): EncodedDownlink {
    if (!this.encodeFn) throw new BackhaulError('BH_CODEC_UNSUPPORTED', `codec ${this.name} defines no encodeDownlink`, { path: this.name });
    const o = checkResult(this.call(this.encodeFn, 'encodeDownlink', input), this.name, 'encodeDownlink');
    const bytes = o['bytes'];
    if (!Array.isArray(bytes) || bytes.length > 242 || !bytes.every((b) => Number.isInteger(b) && (b as number) >= 0 && (b as number) <= 255)) {
      throw new BackhaulError('BH_CODEC_OUTPUT', `codec ${this.name}: encodeDownlink must return bytes, an array of at most 242 integers 0..255`, { path: `${this.name}.bytes` });
    }
    const fPort = o['fPort'];
    if (fPort !== undefined && (!Number.isInteger(fPort) || (fPort as number) < 1 || (fPort as number) > 223)) {
      throw new BackhaulError('BH_CODEC_OUTPUT', `codec ${this.name}: encodeDownlink returned fPort ${JSON.stringify(fPort)}; 1..223`, { path: `${this.name}.fPort` });
    }
    return { bytes: Uint8Array.from(bytes as number[]), fPort: fPort as number | undefined, warnings: stringsOf(o['warnings']) };
  }
}

function checkResult(out: unknown, name: string, what: string): Record<string, unknown> {
  if (typeof out !== 'object' || out === null || Array.isArray(out)) {
    throw new BackhaulError('BH_CODEC_OUTPUT', `codec ${name}: ${what} must return an object`, { path: name });
  }
  const o = out as Record<string, unknown>;
  const errors = stringsOf(o['errors']);
  if (errors.length > 0) throw new BackhaulError('BH_CODEC_ERRORS', `codec ${name}: ${what}: ${errors.join('; ').slice(0, 300)}`, { path: `${name}.errors` });
  return o;
}

function stringsOf(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string').slice(0, 20) : [];
}
