// One frame per line from a serial port, a regular file, a FIFO or stdin. At most a window of lines is in the data
// path at once (async iteration over the stream pauses it while the window is full), so a slow data path slows the
// reader instead of filling memory.
import { constants as fsc, createReadStream, open as openCb, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { SerialPort } from 'serialport';
import { Type, type Static } from '@sinclair/typebox';
import { defineInput, type InputContext } from '../../core/driver.js';
import type { FiniteInput } from '../finite.js';
import { BackhaulError, errorText } from '../../core/errors.js';
import { LogThrottle } from '../../core/throttle.js';
import { InFlight } from '../../core/inflight.js';
import { deferred } from '../util.js';
import { LineSplitter } from './split.js';

const options = Type.Object(
  {
    path: Type.String({
      description: 'Serial device (`/dev/ttyUSB0`), regular file, FIFO, or `-` for stdin. Relative paths are relative to the config file.',
      minLength: 1,
    }),
    baud: Type.Optional(
      Type.Integer({
        description: 'Serial baud rate. Giving it opens `path` as a serial port; paths under /dev/tty* and /dev/serial/ are serial ports anyway, at 4800 baud unless set.',
        minimum: 50,
        maximum: 4000000,
      }),
    ),
    maxLineBytes: Type.Integer({ description: 'Longer lines are dropped, logged and counted.', minimum: 16, default: 65536 }),
    follow: Type.Boolean({
      description: 'Regular files: after the end, keep reading lines appended later (like `tail -f`). false: read to the end, then idle.',
      default: false,
    }),
    reopen: Type.Boolean({ description: 'FIFOs: when the writer closes, reopen and wait for the next writer. false: stop at the first end.', default: true }),
    reopenMs: Type.Integer({ description: 'Serial ports (and vanished FIFOs): retry opening every this many ms after an error or unplug.', minimum: 10, default: 5000 }),
    pollMs: Type.Integer({ description: 'With `follow`: how often to look for appended lines.', minimum: 10, default: 1000 }),
  },
  { additionalProperties: false },
);

type Kind = 'stdin' | 'serial' | 'fifo' | 'file';

export const DEFAULT_SERIAL_BAUD = 4800;

/**
 * The lines input. `done()` resolves once the input will read nothing more and every line read was emitted (its emit
 * resolved): at the end of a regular file (without `follow`), when a FIFO's writer closed (without `reopen`), at the
 * end of stdin, or after `stop()`.
 */
export type LinesInput = FiniteInput;

function openNonBlocking(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    // O_NONBLOCK: opening a FIFO for reading does not wait for a writer, so no libuv thread blocks in open().
    openCb(path, fsc.O_RDONLY | fsc.O_NONBLOCK, (err, fd) => (err ? reject(err) : resolve(fd)));
  });
}

function create(opts: Static<typeof options>, ctx: InputContext): LinesInput {
  const rawPath = opts.path;
  const path = rawPath === '-' ? '-' : ctx.resolvePath(rawPath);
  const { maxLineBytes, follow, reopen, reopenMs, pollMs } = opts;
  const looksSerial = /^\/dev\/(tty|serial\/|cu\.)/.test(path);
  const baud = opts.baud ?? (looksSerial ? DEFAULT_SERIAL_BAUD : undefined);
  const log = ctx.logger;
  const throttle = new LogThrottle(ctx.clock);
  const inflight = new InFlight();
  const finished = deferred();
  const splitter = new LineSplitter(maxLineBytes);
  const pathKey = `inputs.${ctx.id}.path`;

  let kind: Kind = 'file';
  let stopped = false;
  let started = false;
  let current: Readable | undefined;
  let offset = 0; // regular files: bytes consumed so far
  let inode = 0;
  let sleepTimer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  let loop: Promise<void> | undefined;

  const countError = (key: string, msg: string, fields: Record<string, unknown> = {}) => {
    ctx.metrics.inputErrors.inc({ input: ctx.id });
    const suppressed = throttle.take(key);
    if (suppressed !== null) log.warn({ path: rawPath, ...fields, ...(suppressed > 0 ? { suppressed } : {}) }, msg);
  };

  // Waits between retries use real, ref'd timers (not ctx.clock, whose system timers are unref'd): during a serial
  // outage or while following a file they are all that is pending, and they must keep the process alive.
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      wake = resolve;
      sleepTimer = setTimeout(() => {
        sleepTimer = undefined;
        wake = undefined;
        resolve();
      }, ms);
    });

  // Up to PIPELINE lines are in the data path at once: their emits are made in order (so they are queued in order),
  // and the durable outbox commits them together instead of paying one disk sync per line. Reading waits when the
  // window is full, so a slow data path still slows the reader.
  const PIPELINE = 256;
  const window: Array<Promise<void>> = [];
  const emitLine = async (line: string): Promise<void> => {
    window.push(
      inflight.track(ctx.emit({ input: ctx.id, payload: line, receivedAt: ctx.clock.now() })).catch((err: unknown) => {
        countError('emit', 'could not hand a line to the data path; line lost', { err: errorText(err) });
      }),
    );
    if (window.length >= PIPELINE) await window.shift();
  };

  const handle = async (piece: { line: string } | { tooLong: number } | undefined): Promise<void> => {
    if (!piece) return;
    if ('line' in piece) {
      if (!stopped) await emitLine(piece.line);
      return;
    }
    countError('long', `dropped a line longer than maxLineBytes (${maxLineBytes})`, { bytes: piece.tooLong });
  };

  const openSerial = async (): Promise<Readable> => {
    let mod: typeof import('serialport');
    try {
      mod = await import('serialport');
    } catch (err) {
      throw new BackhaulError('BH_INPUT_FAILED', `serial support (the serialport package) cannot load: ${errorText(err)}`, { path: pathKey, cause: err });
    }
    const port = new mod.SerialPort({ path, baudRate: baud ?? DEFAULT_SERIAL_BAUD, autoOpen: false });
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    return port;
  };

  const openFifo = async (): Promise<Readable> => {
    const fd = await openNonBlocking(path);
    return new Socket({ fd, readable: true, writable: false });
  };

  const openFile = async (): Promise<Readable> => {
    const st = await stat(path);
    if (st.ino !== inode || st.size < offset) {
      if (inode !== 0) log.info({ path: rawPath }, 'file was truncated or replaced; reading it from the start');
      offset = 0;
      splitter.reset();
    }
    inode = st.ino;
    const s = createReadStream(path, { start: offset });
    await new Promise<void>((resolve, reject) => {
      s.once('open', () => {
        s.off('error', reject);
        resolve();
      });
      s.once('error', reject);
    });
    return s;
  };

  const openSource = (): Promise<Readable> => {
    switch (kind) {
      case 'stdin':
        return Promise.resolve(process.stdin);
      case 'serial':
        return openSerial();
      case 'fifo':
        return openFifo();
      case 'file':
        return openFile();
    }
  };

  /** Reads one opened stream to its end; throws on a read error. */
  const pump = async (stream: Readable): Promise<void> => {
    for await (const chunk of stream as AsyncIterable<Buffer | string>) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      if (kind === 'file') offset += buf.length;
      for (const piece of splitter.push(buf)) {
        if (stopped) return;
        await handle(piece);
      }
      if (stopped) return;
    }
  };

  /** For `follow`: waits until the file grew, shrank or was replaced. False when stopped. */
  const waitForChange = async (): Promise<boolean> => {
    for (;;) {
      await sleep(pollMs);
      if (stopped) return false;
      let st: Stats;
      try {
        st = await stat(path);
      } catch {
        continue; // being rotated: the new file appears soon
      }
      if (st.ino !== inode || st.size !== offset) return true;
    }
  };

  // Destroying a SerialPort stream leaves its port (the fd and the binding's poll) open: close it first.
  const release = (stream: Readable, err?: Error): void => {
    if (kind === 'serial') {
      const port = stream as SerialPort;
      if (port.isOpen) port.close(() => undefined);
    }
    stream.destroy(err);
  };

  // An unplugged USB adapter (or a pty whose master closed) can read as an endless end of file, which serialport
  // retries at once, forever, without an error; its device node vanishes, though, so that is what is watched.
  const watchUnplug = (stream: Readable): NodeJS.Timeout =>
    setInterval(
      () => {
        stat(path).catch((err: unknown) => {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') release(stream, new Error(`${rawPath} vanished (unplugged?)`));
        });
      },
      Math.min(reopenMs, 1000),
    );

  const run = async (first: Readable): Promise<void> => {
    let stream: Readable | undefined = first;
    while (!stopped) {
      if (!stream) {
        try {
          stream = await openSource();
        } catch (err) {
          if (stopped) break;
          countError(`open:${errorText(err)}`, `cannot open ${kind}; retrying every ${reopenMs} ms`, { err: errorText(err) });
          await sleep(reopenMs);
          continue;
        }
        if (stopped) {
          release(stream);
          break;
        }
        if (kind === 'serial') log.info({ path: rawPath, baud }, 'serial port reopened');
      }
      current = stream;
      let failed = false;
      const watchdog = kind === 'serial' ? watchUnplug(stream) : undefined;
      try {
        await pump(stream);
      } catch (err) {
        if (!stopped) {
          failed = true;
          countError(`read:${errorText(err)}`, `read error on ${kind}`, { err: errorText(err) });
        }
      }
      if (watchdog) clearInterval(watchdog);
      current = undefined;
      if (kind !== 'stdin') release(stream);
      stream = undefined;
      if (stopped) break;

      if (kind === 'file') {
        if (failed) break;
        if (!follow) {
          await handle(splitter.flush());
          break;
        }
        if (!(await waitForChange())) break;
      } else if (kind === 'fifo') {
        if (!failed) await handle(splitter.flush()); // the writer closed: its last line is complete
        splitter.reset();
        if (!reopen) break;
      } else if (kind === 'serial') {
        splitter.reset();
        if (!failed) countError('closed', `serial port closed (unplugged?); retrying every ${reopenMs} ms`);
        await sleep(reopenMs);
      } else {
        await handle(splitter.flush());
        break;
      }
    }
  };

  return {
    async start() {
      if (started) throw new BackhaulError('BH_INPUT_FAILED', 'input already started', { path: pathKey });
      started = true;
      stopped = false;
      if (path === '-') kind = 'stdin';
      else if (baud !== undefined) kind = 'serial';
      else {
        let st: Stats;
        try {
          st = await stat(path);
        } catch (err) {
          started = false;
          throw new BackhaulError('BH_INPUT_FAILED', `cannot read ${rawPath}: ${errorText(err)}`, { path: pathKey, cause: err });
        }
        if (st.isFIFO()) kind = 'fifo';
        else if (st.isFile()) kind = 'file';
        else if (st.isCharacterDevice()) {
          started = false;
          throw new BackhaulError('BH_INPUT_FAILED', `${rawPath} is a character device; set inputs.${ctx.id}.baud to read it as a serial port`, {
            path: pathKey,
          });
        } else {
          started = false;
          throw new BackhaulError('BH_INPUT_FAILED', `${rawPath} is neither a file, a FIFO nor a serial port`, { path: pathKey });
        }
      }
      let first: Readable;
      try {
        first = await openSource();
      } catch (err) {
        started = false;
        if (err instanceof BackhaulError) throw err;
        throw new BackhaulError('BH_INPUT_FAILED', `cannot open ${kind === 'serial' ? 'serial port' : kind} ${rawPath}: ${errorText(err)}`, {
          path: pathKey,
          cause: err,
        });
      }
      log.info({ path: rawPath, kind, ...(kind === 'serial' ? { baud } : {}) }, 'reading lines');
      loop = run(first)
        .catch((err: unknown) => {
          ctx.metrics.inputErrors.inc({ input: ctx.id });
          log.error({ err: errorText(err) }, 'line reader failed');
        })
        .then(() => inflight.settle()) // the last window of lines
        .finally(() => {
          finished.resolve();
        });
    },

    async stop() {
      stopped = true;
      if (sleepTimer) clearTimeout(sleepTimer);
      sleepTimer = undefined;
      wake?.();
      wake = undefined;
      if (current) {
        if (kind === 'stdin') current.pause();
        release(current);
      }
      if (loop) await loop;
      else finished.resolve();
      await inflight.settle();
    },

    done() {
      return finished.promise;
    },

    info() {
      return { path: rawPath };
    },
  };
}

/** `create` returns a {@link LinesInput}, so `linesInput.create(...).done()` type-checks. */
export const linesInput = {
  ...defineInput({
    kind: 'input',
    type: 'lines',
    description: 'One frame per text line from a serial port, file, FIFO or stdin.',
    options,
    defaultDecoder: 'opentrv',
    create,
  }),
  create,
};
