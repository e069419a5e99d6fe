// Who owns an MQTT client id, and which QoS 2 publishes of a session were already ingested.
//
// aedes keys a session (subscriptions, QoS 1/2 messages queued while the client is away, the QoS 2 receive state)
// by client id alone: any client giving that id with clean session 0 resumes it, and a second connection with the id
// closes the first (MQTT-3.1.4-2). With logins that lets one device kick another and read its queued orders. So a
// client id belongs to the login that first used it, for as long as a connection or a stored session holds it; a
// connection of another login with that id is refused (CONNACK 2) before aedes looks at the session.

/** The login a connection proves: a device (by id, which outlives password resets), a service account, or anyone. */
export type Owner = string;

export function ownerKey(p: { readonly username: string; readonly device?: string } | undefined): Owner {
  if (!p) return 'anonymous';
  return p.device !== undefined ? `device:${p.device}` : `user:${p.username}`;
}

interface Holding {
  owner: Owner;
  /** Connections that logged in with this id and are not closed yet: nearly always one, so an array, not a Set. */
  readonly live: object[];
  /** The last login with this id asked for clean session 0: aedes keeps its session after the connection closes. */
  persistent: boolean;
}

export class ClientIds {
  private readonly held = new Map<string, Holding>();

  /**
   * Claims `clientId` for `owner` on behalf of connection `conn`. False when another owner holds it (connected, or
   * a stored session): the caller refuses the CONNECT. The same owner may always take its id over (a device
   * reconnecting while its old connection is still half-open).
   */
  claim(clientId: string, owner: Owner, conn: object, persistent: boolean): boolean {
    const h = this.held.get(clientId);
    if (h && h.owner !== owner) return false;
    if (h) {
      if (!h.live.includes(conn)) h.live.push(conn);
      h.persistent = persistent;
    } else {
      this.held.set(clientId, { owner, live: [conn], persistent });
    }
    return true;
  }

  /** Connection `conn` closed: the id is free again once no connection holds it and no session is kept for it. */
  release(clientId: string, conn: object): void {
    const h = this.held.get(clientId);
    const i = h?.live.indexOf(conn) ?? -1;
    if (!h || i < 0) return;
    h.live.splice(i, 1);
    if (h.live.length === 0 && !h.persistent) this.held.delete(clientId);
  }

  ownerOf(clientId: string): Owner | undefined {
    return this.held.get(clientId)?.owner;
  }

  /** Client ids held (for tests). */
  get size(): number {
    return this.held.size;
  }
}

interface Receipt {
  /** Resolves once the first copy's frame is durably queued (rejects if that failed). */
  readonly handover: Promise<void>;
  /** Resolves once aedes has also stored the packet in its QoS 2 store, or the first copy's connection closed. */
  readonly settled: Promise<void>;
  readonly stored: () => void;
}

/**
 * Exactly-once ingestion of QoS 2 publishes. The frame is handed to the data path when the first copy of a packet id
 * arrives (before aedes writes PUBREC); a copy with the same id that comes before the session's PUBREL (a DUP resend,
 * in the same read or after a reconnect) is not ingested again: it waits until the first is handed over and stored
 * by aedes, so aedes finds it in its own QoS 2 store and answers PUBREC without publishing it again. An id is
 * released when aedes deletes it from that store (on PUBREL), or when a clean session ends, so the receipts live
 * exactly as long as aedes's own QoS 2 state.
 */
export class QoS2Receipts {
  private readonly sessions = new Map<string, Map<number, Receipt>>();

  constructor(private readonly maxInflight: number) {}

  /**
   * What to do with `messageId` in session `clientId`: wait for the earlier copy (a duplicate), or `'new'`, or
   * `'full'` when the session already has `maxInflight` publishes awaiting PUBREL.
   */
  lookup(clientId: string, messageId: number): Promise<void> | 'new' | 'full' {
    const s = this.sessions.get(clientId);
    const earlier = s?.get(messageId);
    if (earlier) return earlier.settled;
    return (s?.size ?? 0) >= this.maxInflight ? 'full' : 'new';
  }

  /**
   * Records the hand-over of a new packet id, made on a connection that ends with `closed`. If the hand-over fails
   * the id is forgotten, so the client's resend is ingested.
   */
  record(clientId: string, messageId: number, handover: Promise<void>, closed: Promise<void>): void {
    let s = this.sessions.get(clientId);
    if (!s) this.sessions.set(clientId, (s = new Map<number, Receipt>()));
    const session = s;
    let stored!: () => void;
    const inStore = new Promise<void>((r) => (stored = r));
    const settled = handover.then(() => Promise.race([inStore, closed]));
    const receipt: Receipt = { handover, settled, stored };
    session.set(messageId, receipt);
    settled.catch(() => {
      // Only this session's own entry: a clean session may have ended, and a new one begun, meanwhile.
      if (this.sessions.get(clientId) === session && session.get(messageId) === receipt) this.released(clientId, messageId);
    });
  }

  /** aedes stored `messageId` of session `clientId` in its QoS 2 store (before it publishes it and writes PUBREC). */
  stored(clientId: string, messageId: number): void {
    this.sessions.get(clientId)?.get(messageId)?.stored();
  }

  /** aedes completed the handshake (PUBREL) for `messageId`: the id may carry a new message now. */
  released(clientId: string, messageId: number): void {
    const s = this.sessions.get(clientId);
    if (!s) return;
    s.delete(messageId);
    if (s.size === 0) this.sessions.delete(clientId);
  }

  /** The session ended (clean session): its receipts go with it. */
  ended(clientId: string): void {
    this.sessions.delete(clientId);
  }

  /** Packet ids held across all sessions (for tests). */
  get size(): number {
    let n = 0;
    for (const s of this.sessions.values()) n += s.size;
    return n;
  }
}

/** The part of aedes's persistence (its in-memory default, aedes-persistence) that holds inbound QoS 2 packets. */
interface IncomingStore {
  incomingStorePacket(client: { readonly id: string }, packet: { readonly messageId?: number }): Promise<unknown>;
  incomingDelPacket(client: { readonly id: string }, packet: { readonly messageId?: number }): Promise<unknown>;
  cleanIncoming?(client: { readonly id: string }): Promise<unknown>;
}

/**
 * Follows aedes's inbound QoS 2 store, so `receipts` knows when a packet is stored, released by PUBREL, or wiped
 * with a clean session. aedes has no event for these; its persistence object is the one place that sees all three,
 * so its three methods are wrapped (same arguments, same results).
 */
export function watchQoS2Store(broker: object, receipts: QoS2Receipts): void {
  const store = (broker as { persistence?: IncomingStore }).persistence;
  if (!store || typeof store.incomingStorePacket !== 'function' || typeof store.incomingDelPacket !== 'function') {
    throw new Error('aedes persistence without an inbound QoS 2 store');
  }
  const put = store.incomingStorePacket.bind(store);
  const del = store.incomingDelPacket.bind(store);
  store.incomingStorePacket = async (client, packet) => {
    const r = await put(client, packet);
    receipts.stored(client.id, packet.messageId ?? 0);
    return r;
  };
  store.incomingDelPacket = async (client, packet) => {
    const r = await del(client, packet);
    receipts.released(client.id, packet.messageId ?? 0);
    return r;
  };
  const clean = store.cleanIncoming?.bind(store);
  if (clean) {
    store.cleanIncoming = (client) => {
      receipts.ended(client.id);
      return clean(client);
    };
  }
}
