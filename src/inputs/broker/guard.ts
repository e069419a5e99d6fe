// A check of every MQTT packet's fixed header on a socket's bytes, before aedes's parser (mqtt-packet) sees them.
//
// mqtt-packet reads a packet's type byte and its remaining length, then appends every byte it is given to a buffer
// list until the whole packet is there: a CONNECT claiming 268 MB (`10 ff ff ff 7f`) followed by data makes the
// process keep all of it, before any login. The guard follows packet boundaries itself (type byte, 1 to 4 length
// bytes, then that many bytes skipped without looking) and refuses a packet as soon as its header claims more than
// the limit in force, so the socket is closed while the parser holds at most one read's worth of bytes. It is linear
// in the bytes and allocates nothing per packet: it is on every byte every client sends.
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

export type GuardRefusal =
  /** The header claims a packet larger than the limit in force. */
  | { readonly reason: 'too_large'; readonly claimed: number; readonly limit: number; readonly loggedIn: boolean }
  /** The remaining length runs past 4 bytes (MQTT 3.1.1 §2.2.3): no valid packet, mqtt-packet would refuse it too. */
  | { readonly reason: 'malformed'; readonly loggedIn: boolean };

const TYPE = 0;
const LENGTH = 1;
const BODY = 2;

export class PacketGuard {
  private state = TYPE;
  private length = 0;
  private multiplier = 1;
  private lengthBytes = 0;
  private left = 0;
  private limit: number;
  private loggedIn = false;

  /**
   * @param beforeLogin Largest packet (fixed header included) before the broker accepted the client's login.
   * @param afterLogin Largest packet once it has (`maxPacketBytes`).
   */
  constructor(
    beforeLogin: number,
    private readonly afterLogin: number,
  ) {
    this.limit = beforeLogin;
  }

  /** True once the broker accepted the client's login. */
  get isLoggedIn(): boolean {
    return this.loggedIn;
  }

  /** The broker sent CONNACK 0: from the next packet header on, the larger limit applies. */
  accepted(): void {
    this.loggedIn = true;
    this.limit = this.afterLogin;
  }

  /** Follows `chunk`, the next bytes of the stream; a refusal for the first packet over the limit, else null. */
  scan(chunk: Uint8Array): GuardRefusal | null {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.state === BODY) {
        const skip = Math.min(this.left, n - i);
        this.left -= skip;
        i += skip;
        if (this.left === 0) this.state = TYPE;
        continue;
      }
      if (this.state === TYPE) {
        // The type and flags are mqtt-packet's business (it refuses bad ones); only the length matters here.
        i++;
        this.state = LENGTH;
        this.length = 0;
        this.multiplier = 1;
        this.lengthBytes = 0;
        continue;
      }
      const b = chunk[i++]!;
      this.length += (b & 0x7f) * this.multiplier;
      this.multiplier *= 0x80;
      this.lengthBytes++;
      if ((b & 0x80) !== 0) {
        if (this.lengthBytes === 4) return { reason: 'malformed', loggedIn: this.loggedIn };
        continue;
      }
      const size = 1 + this.lengthBytes + this.length;
      if (size > this.limit) return { reason: 'too_large', claimed: size, limit: this.limit, loggedIn: this.loggedIn };
      this.left = this.length;
      this.state = this.length === 0 ? TYPE : BODY;
    }
    return null;
  }
}

const GUARD = Symbol('backhaul.packetGuard');
const REFUSED = Symbol('backhaul.packetGuardRefused');

type Refused = (socket: Duplex, why: GuardRefusal) => void;

interface Guarded extends Duplex {
  [GUARD]: PacketGuard;
  [REFUSED]: Refused;
}

/**
 * net.Socket's own `read` (it starts the handle reading, then Readable's). On a stream without a handle (a WebSocket's
 * message stream) it is Readable's `read`, which is what that stream has.
 */
// eslint-disable-next-line @typescript-eslint/unbound-method
const socketRead = Socket.prototype.read;

/**
 * The `read` of every guarded socket: one function for all of them (what it needs is on the socket), so a connection
 * costs no closure or bound function of its own, for as long as it stays open.
 */
function guardedRead(this: Guarded, size?: number): unknown {
  const chunk = socketRead.call(this, size) as unknown;
  if (!(chunk instanceof Uint8Array)) return chunk;
  const why = this[GUARD].scan(chunk);
  if (why === null) return chunk;
  this[REFUSED](this, why);
  this.destroy();
  return null;
}

/**
 * Puts `guard` between `socket` and its reader. aedes reads a socket only with `read()` (paused mode, on
 * 'readable'), so replacing `read` sees every byte it will parse, in order, with no copy and no extra stream; the
 * bytes not yet read stay in the socket's own buffer, which stops reading from the kernel at its high-water mark.
 * On a refusal `refused` is told (give every socket the same function: it gets the socket), the socket is destroyed
 * and the reader gets nothing.
 */
export function guardSocket(socket: Duplex, guard: PacketGuard, refused: Refused): void {
  const s = socket as Guarded;
  s[GUARD] = guard;
  s[REFUSED] = refused;
  s.read = guardedRead;
}
