// MQTT on a raw TCP socket, packets built byte by byte: for the broker cases no client library would send (a header
// claiming 268 MB, an MQTT 5 CONNECT to a 3.1.1 broker, the same QoS 2 PUBLISH three times) and for reading the
// exact bytes the broker answers.
import { connect, type Socket } from 'node:net';

/** MQTT's variable-length "remaining length" (1 to 4 bytes). */
export function remainingLength(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

function str(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
}

function packet(first: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([first, ...remainingLength(body.length)]), body]);
}

export interface ConnectOptions {
  clientId: string;
  clean?: boolean;
  username?: string;
  password?: string | Buffer;
  /** 3 (MQTT 3.1, "MQIsdp"), 4 (3.1.1, the default) or 5. */
  protocolVersion?: 3 | 4 | 5;
  keepalive?: number;
}

export function connectPacket(o: ConnectOptions): Buffer {
  const v = o.protocolVersion ?? 4;
  const flags = (o.username !== undefined ? 0x80 : 0) | (o.password !== undefined ? 0x40 : 0) | (o.clean ?? true ? 0x02 : 0);
  const keepalive = o.keepalive ?? 60;
  const parts = [str(v === 3 ? 'MQIsdp' : 'MQTT'), Buffer.from([v, flags, keepalive >> 8, keepalive & 0xff])];
  if (v === 5) parts.push(Buffer.from([0])); // no properties
  parts.push(str(o.clientId));
  if (o.username !== undefined) parts.push(str(o.username));
  if (o.password !== undefined) parts.push(str(o.password));
  return packet(0x10, Buffer.concat(parts));
}

export function publishPacket(o: { topic: string; payload: string | Buffer; qos: 0 | 1 | 2; messageId?: number; dup?: boolean }): Buffer {
  const first = 0x30 | (o.dup ? 0x08 : 0) | (o.qos << 1);
  const id = o.qos > 0 ? Buffer.from([(o.messageId ?? 1) >> 8, (o.messageId ?? 1) & 0xff]) : Buffer.alloc(0);
  return packet(first, Buffer.concat([str(o.topic), id, typeof o.payload === 'string' ? Buffer.from(o.payload) : o.payload]));
}

export function pubrelPacket(messageId: number): Buffer {
  return Buffer.from([0x62, 0x02, messageId >> 8, messageId & 0xff]);
}

export function pubcompPacket(messageId: number): Buffer {
  return Buffer.from([0x70, 0x02, messageId >> 8, messageId & 0xff]);
}

export function pubrecPacket(messageId: number): Buffer {
  return Buffer.from([0x50, 0x02, messageId >> 8, messageId & 0xff]);
}

export function subscribePacket(messageId: number, filter: string, qos: 0 | 1 | 2): Buffer {
  return packet(0x82, Buffer.concat([Buffer.from([messageId >> 8, messageId & 0xff]), str(filter), Buffer.from([qos])]));
}

export const TYPE = { CONNACK: 2, PUBLISH: 3, PUBACK: 4, PUBREC: 5, PUBREL: 6, PUBCOMP: 7, SUBACK: 9 } as const;

export interface RawPacket {
  readonly type: number;
  readonly flags: number;
  readonly body: Buffer;
}

/** A TCP connection that collects whatever the broker sends, packet by packet. */
export class RawClient {
  readonly packets: RawPacket[] = [];
  /** Every byte received, as it came. */
  received = Buffer.alloc(0);
  private pending = Buffer.alloc(0);
  private isClosed = false;
  readonly closed: Promise<void>;
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.received = Buffer.concat([this.received, d]);
      this.pending = Buffer.concat([this.pending, d]);
      this.split();
      this.wake();
    });
    socket.on('error', () => undefined); // a reset is one way for the broker to close; `closed` tells
    this.closed = new Promise<void>((r) =>
      socket.once('close', () => {
        this.isClosed = true;
        this.wake();
        r();
      }),
    );
  }

  static open(port: number, opts: { host?: string; localAddress?: string } = {}): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host: opts.host ?? '127.0.0.1', ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
      s.once('connect', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  get open(): boolean {
    return !this.isClosed;
  }

  write(b: Buffer | Uint8Array): void {
    if (!this.socket.destroyed) this.socket.write(b);
  }

  /** The next packet of `type` not yet taken; rejects if the connection closes first or none comes in `timeoutMs`. */
  async next(type: number, timeoutMs = 10_000): Promise<RawPacket> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const i = this.packets.findIndex((p) => p.type === type);
      if (i >= 0) return this.packets.splice(i, 1)[0]!;
      if (this.isClosed) throw new Error(`connection closed before a packet of type ${type} came`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`no packet of type ${type} within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Resolves true once closed, false if still open after `timeoutMs` (a test's failure, never a measured time). */
  async closesWithin(timeoutMs = 10_000): Promise<boolean> {
    if (this.isClosed) return true;
    let t: NodeJS.Timeout | undefined;
    const r = await Promise.race([this.closed.then(() => true), new Promise<boolean>((res) => (t = setTimeout(() => res(false), timeoutMs)))]);
    clearTimeout(t);
    return r;
  }

  /** CONNECT, then the CONNACK's return code. */
  async login(o: ConnectOptions): Promise<number> {
    this.write(connectPacket(o));
    const ack = await this.next(TYPE.CONNACK);
    return ack.body[1]!;
  }

  end(): void {
    this.socket.destroy();
  }

  private split(): void {
    for (;;) {
      const b = this.pending;
      if (b.length < 2) return;
      let len = 0;
      let mul = 1;
      let i = 1;
      for (;;) {
        if (i >= b.length) return;
        const c = b[i++]!;
        len += (c & 0x7f) * mul;
        mul *= 128;
        if ((c & 0x80) === 0) break;
      }
      if (b.length < i + len) return;
      this.packets.push({ type: b[0]! >> 4, flags: b[0]! & 0x0f, body: b.subarray(i, i + len) });
      this.pending = b.subarray(i + len);
    }
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
