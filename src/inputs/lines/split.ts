// Splits a byte stream into lines without ever holding more than `maxLineBytes` (+1) of one line: a longer line is
// discarded as it streams past and reported once, with its length, when its end arrives.

export type LinePiece = { readonly line: string } | { readonly tooLong: number };

const LF = 0x0a;
const CR = 0x0d;

export class LineSplitter {
  private parts: Buffer[] = [];
  private len = 0;
  private dropping = false;
  private dropped = 0;

  constructor(private readonly maxLineBytes: number) {}

  /** Complete lines in `chunk` (in order); the unterminated rest is kept for the next chunk. */
  *push(chunk: Buffer): Generator<LinePiece> {
    let from = 0;
    while (from < chunk.length) {
      const nl = chunk.indexOf(LF, from);
      const end = nl === -1 ? chunk.length : nl;
      this.take(chunk.subarray(from, end));
      if (nl === -1) return;
      from = nl + 1;
      const piece = this.finish();
      if (piece) yield piece;
    }
  }

  /** The unterminated last line, if any (at the end of a file or when a FIFO writer closed). */
  flush(): LinePiece | undefined {
    return this.finish();
  }

  /** Forget a partial line (after a serial error, the rest of it is gone). */
  reset(): void {
    this.parts = [];
    this.len = 0;
    this.dropping = false;
    this.dropped = 0;
  }

  private take(seg: Buffer): void {
    if (seg.length === 0) return;
    if (this.dropping) {
      this.dropped += seg.length;
      return;
    }
    // One byte of slack for the `\r` of a CRLF line ending, stripped in finish().
    if (this.len + seg.length > this.maxLineBytes + 1) {
      this.dropping = true;
      this.dropped = this.len + seg.length;
      this.parts = [];
      this.len = 0;
      return;
    }
    this.parts.push(Buffer.from(seg)); // copy: the stream may reuse its chunk
    this.len += seg.length;
  }

  private finish(): LinePiece | undefined {
    if (this.dropping) {
      const n = this.dropped;
      this.reset();
      return { tooLong: n };
    }
    if (this.len === 0) return undefined;
    let buf = this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts, this.len);
    this.parts = [];
    this.len = 0;
    while (buf.length > 0 && buf[buf.length - 1] === CR) buf = buf.subarray(0, buf.length - 1);
    if (buf.length > this.maxLineBytes) return { tooLong: buf.length };
    if (buf.length === 0) return undefined;
    return { line: buf.toString('utf8') };
  }
}
