// file: JSON lines, one message per line, appended to a file that is rotated (path.1, path.2, ...) before it would
// grow past maxBytes. A batch is one write followed by an fdatasync, so a resolved write is on disk.
import { errorText } from '../../core/errors.js';
import { mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { defineSink, SinkError } from '../../core/driver.js';
import { isInside, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../../core/private-files.js';
import { messageToJson } from '../format.js';

const Options = Type.Object(
  {
    path: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'File to append to. Default `readings.jsonl` in the data folder; a relative path is relative to the config file.',
      }),
    ),
    maxBytes: Type.Integer({
        minimum: 1024,
        default: 10 * 1024 * 1024,
        description: 'Rotate the file before a batch would make it larger than this (a single larger batch still goes in whole).',
      }),
    maxFiles: Type.Integer({
        minimum: 0,
        default: 5,
        description: 'Rotated files kept (path.1 is the newest); older ones are deleted. 0 keeps none.',
      }),
  },
  { additionalProperties: false },
);

const RETRYABLE_CODES = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EAGAIN', 'EBUSY', 'EMFILE', 'ENFILE', 'EINTR']);

function fsError(what: string, e: unknown): SinkError {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return new SinkError(`${what}: ${errorText(e)}`, code === undefined || RETRYABLE_CODES.has(code), { cause: e });
}

export const fileSink = defineSink({
  kind: 'sink',
  type: 'file',
  description: 'Append messages as JSON lines to a local file, rotated by size.',
  options: Options,
  create(o, ctx) {
    const path = o.path === undefined ? join(ctx.dataDir, 'readings.jsonl') : ctx.resolvePath(o.path);
    const { maxBytes, maxFiles } = o;
    // In the data folder, readings are private (0600, folder 0700); elsewhere the operator's umask decides.
    const inData = isInside(ctx.dataDir, path);
    let fh: FileHandle | undefined;
    let size = 0;

    async function openFile(): Promise<void> {
      const h = await open(path, 'a', inData ? PRIVATE_FILE_MODE : 0o666);
      try {
        size = (await h.stat()).size;
      } catch (e) {
        await h.close();
        throw e;
      }
      await fh?.close().catch(() => undefined);
      fh = h;
    }

    async function rotate(): Promise<void> {
      await fh?.close();
      fh = undefined;
      if (maxFiles === 0) {
        await rm(path, { force: true });
      } else {
        await rm(`${path}.${maxFiles}`, { force: true });
        for (let i = maxFiles - 1; i >= 1; i--) {
          const from = `${path}.${i}`;
          const exists = await stat(from).then(
            () => true,
            () => false,
          );
          if (exists) await rename(from, `${path}.${i + 1}`);
        }
        await rename(path, `${path}.1`);
      }
      await openFile();
      ctx.logger.info({ path, maxFiles }, 'file sink rotated its file');
    }

    return {
      async open() {
        try {
          await mkdir(dirname(path), { recursive: true, ...(inData ? { mode: PRIVATE_DIR_MODE } : {}) });
          await openFile();
        } catch (e) {
          throw fsError(`cannot open ${path}`, e);
        }
      },

      async write(batch) {
        if (batch.length === 0) return;
        const data = Buffer.from(batch.map((m) => JSON.stringify(messageToJson(m)) + '\n').join(''), 'utf8');
        try {
          if (!fh) await openFile();
          if (size > 0 && size + data.length > maxBytes) await rotate();
        } catch (e) {
          throw fsError(`cannot rotate ${path}`, e);
        }
        const handle = fh;
        if (!handle) throw new SinkError(`${path} is not open`, true);
        const before = size;
        try {
          let off = 0;
          while (off < data.length) {
            const { bytesWritten } = await handle.write(data, off, data.length - off);
            off += bytesWritten;
          }
          await handle.datasync();
          size = before + data.length;
        } catch (e) {
          // Cut a half-written batch off so the next line does not start in the middle of this one.
          await handle.truncate(before).catch(() => undefined);
          size = before;
          throw fsError(`cannot write to ${path}`, e);
        }
      },

      async close() {
        const h = fh;
        fh = undefined;
        await h?.close();
      },
    };
  },
});
