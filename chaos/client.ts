import http from 'node:http'
import WebSocket from 'ws'
import type { Rest } from '../bench/rest.js'
import { openSocket, UpgradeRefused } from '../bench/sockets.js'
import { Deliveries } from './deliveries.js'
import { NoAnswer, tricklePost, withTimeout } from './http.js'
import type { Ledger } from './ledger.js'
import type { Rng } from './prng.js'

/** One instance as clients see it: through its TCP proxy. */
export interface Endpoint {
  ws: string
  rest: Rest
}

export interface Account {
  id: string
  email: string
  password: string
}

interface Pending {
  cmid: string
  conv: string
  via: 'ws' | 'rest'
  sentAt: number
  session: number
  retry?: NodeJS.Timeout
}

/** Send errors worth retrying with the same client_msg_id. `internal` is also a violation. */
const RETRY_CODES = new Set(['unavailable', 'rate_limited', 'internal'])
const ACK_TIMEOUT_MS = 10_000
const REST_TIMEOUT_MS = 15_000

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** What a server frame may carry, as far as the clients look. */
interface Frame {
  type: string
  conversation_id?: string
  user_id?: string
  client_msg_id?: string | null
  code?: string
  message?: Stored | string
}

interface Stored {
  seq: number
  id: string
  conversation_id: string
}

/**
 * A user with one user socket, as a careful client behaves: it keeps every send in an outbox
 * until acked and resends it with the same client_msg_id after a reconnect or a retriable
 * error; it reconnects with `?resume=true` and a first `sync` carrying its cursors; it moves to
 * the next instance when one does not answer. Every delivery is checked as it arrives: per
 * conversation the seqs must rise by one; a jump is recorded as a gap for the checker, which
 * knows which gaps removals excuse.
 */
export class ChaosClient {
  readonly deliveries: Deliveries
  /** Where it believes it is a member now: new sends go only there. */
  readonly memberOf = new Set<string>()
  readonly outbox = new Map<string, Pending>()
  private ws: WebSocket | undefined
  private session = 0
  private sessions = 0
  private connecting = false
  private failures = 0
  private wsAt: number
  private restAt: number
  private stopped = false
  /** The next connect asks for a WebSocket ticket first (see `reconnect`). */
  private ticketNext = false
  private sent = 0
  private syncTimer: NodeJS.Timeout | undefined
  /** Keep-alive connections of slow sends: left open after the answer, as a browser would. */
  private readonly slowAgent = new http.Agent({ keepAlive: true })

  constructor(
    readonly idx: number,
    readonly account: Account,
    private token: string,
    private readonly endpoints: Endpoint[],
    private readonly ledger: Ledger,
    private readonly rng: Rng,
  ) {
    this.wsAt = idx % endpoints.length
    this.deliveries = new Deliveries(idx, ledger)
    this.restAt = this.wsAt
  }

  /** Which socket of this client is the current one (#1 is the first), and through which instance. */
  get socketNumber(): number {
    return this.session
  }

  get instanceIndex(): number {
    return this.wsAt
  }

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN
  }

  join(conv: string): void {
    this.deliveries.join(conv)
    this.memberOf.add(conv)
  }

  /** Connects, retrying across instances until it succeeds or the client stops. */
  async connect(): Promise<void> {
    if (this.connecting || this.stopped) return
    this.connecting = true
    try {
      while (!this.stopped && !this.connected) {
        try {
          await this.open(this.endpoints[this.wsAt] as Endpoint)
          this.failures = 0
        } catch (err) {
          this.failures++
          if (err instanceof UpgradeRefused) {
            this.ledger.httpAnswer('ws upgrade', err.status, err.headers, err.message)
          } else this.ledger.count('connect_errors')
          this.wsAt = (this.wsAt + 1) % this.endpoints.length
          await sleep(Math.min(100 * 2 ** Math.min(this.failures, 4), 1500) + this.rng.int(0, 200))
        }
      }
    } finally {
      this.connecting = false
    }
  }

  private async open(ep: Endpoint): Promise<void> {
    let url = `${ep.ws}/api/v1/chat/ws?resume=true`
    let headers: Record<string, string> = { authorization: `Bearer ${this.token}` }
    const useTicket = this.ticketNext || this.rng.chance(0.3)
    this.ticketNext = false
    if (useTicket) {
      const ticket = await this.ticket(ep)
      if (ticket !== undefined) {
        url += `&ticket=${encodeURIComponent(ticket)}`
        headers = {}
      }
    }
    const session = ++this.sessions
    const ws = await openSocket(url, { headers, timeoutMs: 10_000 }, (f) => this.onFrame(session, f))
    if (this.stopped) {
      ws.terminate()
      return
    }
    this.ws = ws
    this.session = session
    this.deliveries.newSocket()
    this.ledger.count('sessions')
    ws.on('close', (code) => this.onClose(session, code))
    ws.on('error', () => undefined)
    this.sendSync()
    for (const p of this.outbox.values()) if (p.via === 'ws') this.transmit(p)
    if (ws.readyState !== WebSocket.OPEN) this.onClose(session, 1006)
  }

  /**
   * Drops the socket and connects again, with a ticket: a user reloading the page. During an
   * outage this is what exercises the upgrade's and the ticket's dependency on Redis.
   */
  reconnect(): void {
    if (!this.connected) return
    this.ticketNext = true
    this.ws?.terminate()
  }

  private sendSync(): void {
    this.ws?.send(this.deliveries.syncFrame())
  }

  private onClose(session: number, code: number): void {
    if (session !== this.session || this.ws === undefined) return
    this.ws = undefined
    this.ledger.count(`socket_close_${code}`)
    if (!this.stopped) void this.connect()
  }

  private async ticket(ep: Endpoint): Promise<string | undefined> {
    try {
      const r = await withTimeout(
        ep.rest.raw('POST', '/api/v1/chat/ws-ticket', undefined, this.token),
        REST_TIMEOUT_MS,
      )
      this.ledger.httpAnswer('ws-ticket', r.status, r.headers, r.text)
      return r.status === 201 ? (JSON.parse(r.text) as { ticket: string }).ticket : undefined
    } catch {
      this.ledger.count('rest_network_errors')
      return undefined
    }
  }

  // ---- frames ----

  private onFrame(session: number, text: string): void {
    if (session !== this.session) return
    const f = JSON.parse(text) as Frame
    const conv = f.conversation_id as string
    if (f.type === 'message.new') this.deliveries.onMessage(conv, (f.message as Stored).seq, session)
    else if (f.type === 'message.ack') this.onAck(f.client_msg_id as string, f.message as Stored)
    else if (f.type === 'error')
      this.onError(f.code ?? 'unknown', String(f.message ?? ''), f.client_msg_id ?? undefined)
    else if (f.type === 'member.removed' && f.user_id === this.account.id) this.onRemoved(conv)
    else if (f.type === 'member.added' && f.user_id === this.account.id) {
      this.memberOf.add(conv)
      this.deliveries.added(conv)
    }
  }

  private onAck(cmid: string, m: Stored): void {
    const prev = this.ledger.acked.get(cmid)
    if (prev) {
      this.ledger.count('acks_repeated')
      if (prev.seq !== m.seq || prev.id !== m.id)
        this.ledger.violation('ack_changed', `${cmid}: acked as seq ${prev.seq}, then as seq ${m.seq}`)
    } else {
      this.ledger.acked.set(cmid, { conv: m.conversation_id, seq: m.seq, id: m.id, sender: this.account.id })
    }
    const p = this.outbox.get(cmid)
    if (p) {
      clearTimeout(p.retry)
      this.outbox.delete(cmid)
    }
  }

  private onError(code: string, message: string, cmid: string | undefined): void {
    this.ledger.wsError(code, cmid !== undefined, message, this.idx)
    if (cmid !== undefined) {
      const p = this.outbox.get(cmid)
      if (!p) return
      if (code === 'not_found' || code === 'forbidden') {
        // Sent while (being) removed from the group: refused, so it should not be stored.
        this.outbox.delete(cmid)
        this.ledger.count('sends_refused_not_member')
        this.ledger.refusedSends.set(cmid, `error{${code}}`)
      } else if (RETRY_CODES.has(code)) {
        clearTimeout(p.retry)
        p.retry = setTimeout(() => this.transmit(p), this.rng.int(500, 1000))
      } else {
        this.outbox.delete(cmid)
        this.ledger.violation('send_refused', `user ${this.idx} ${cmid}: error{${code}} ${message}`)
      }
      return
    }
    const refused = /^not a member of: (.*)$/.exec(message)
    if (code === 'not_found' && refused?.[1]) {
      for (const conv of refused[1].split(', ')) this.onRefused(conv)
      return
    }
    // A feed failed (the database was down during a replay or gap fill): the server asks for a sync.
    clearTimeout(this.syncTimer)
    this.syncTimer = setTimeout(() => {
      if (this.connected) {
        this.ledger.count('syncs_after_error')
        this.sendSync()
      }
    }, 1000)
  }

  private onRemoved(conv: string): void {
    this.memberOf.delete(conv)
    this.deliveries.removed(conv)
    const e = this.ledger.lastEpisode(this.idx, conv)
    if (e && e.hi === undefined) e.seenLive = true
    else this.ledger.violation('unexpected_removal', `user ${this.idx} conv ${conv.slice(0, 8)}`)
  }

  /** The server refused to resume a conversation: the user was removed while its socket was away. */
  private onRefused(conv: string): void {
    this.memberOf.delete(conv)
    const e = this.ledger.lastEpisode(this.idx, conv)
    const cursor = this.deliveries.cursor(conv)
    if (!e) {
      this.ledger.violation('resume_refused_member', `user ${this.idx} conv ${conv.slice(0, 8)} at ${cursor}`)
      return
    }
    e.refusedCursor = Math.min(e.refusedCursor ?? cursor, cursor)
  }

  // ---- sending ----

  /** A new message into one of the user's conversations, over the socket or (sometimes) REST. */
  sendNew(restShare: number, into?: string): void {
    if (this.stopped || this.memberOf.size === 0 || (into !== undefined && !this.memberOf.has(into))) return
    const conv = into ?? this.rng.pick([...this.memberOf])
    const cmid = `u${this.idx}-${++this.sent}`
    const p: Pending = { cmid, conv, via: this.rng.chance(restShare) ? 'rest' : 'ws', sentAt: 0, session: 0 }
    this.outbox.set(cmid, p)
    this.ledger.count('sends')
    if (p.via === 'rest') void this.restSend(p)
    else this.transmit(p)
  }

  private transmit(p: Pending): void {
    if (!this.outbox.has(p.cmid) || !this.connected) return
    if (p.sentAt > 0) this.ledger.count('resends')
    p.sentAt = this.ledger.now()
    p.session = this.session
    this.ws?.send(
      JSON.stringify({
        type: 'message.send',
        conversation_id: p.conv,
        content: `chaos ${p.cmid}`,
        client_msg_id: p.cmid,
      }),
    )
  }

  /** Resends socket sends left unanswered on the current socket (a lost answer, a stuck request). */
  sweep(): void {
    const now = this.ledger.now()
    for (const p of this.outbox.values()) {
      if (p.via === 'ws' && p.session === this.session && p.sentAt > 0 && now - p.sentAt > ACK_TIMEOUT_MS) {
        this.ledger.count('resends_after_timeout')
        this.transmit(p)
      }
    }
  }

  private async restSend(p: Pending): Promise<void> {
    const path = `/api/v1/chat/conversations/${p.conv}/messages`
    while (!this.stopped && this.outbox.has(p.cmid)) {
      const ep = this.endpoints[this.restAt] as Endpoint
      let wait = this.rng.int(500, 1000)
      try {
        if (p.sentAt > 0) this.ledger.count('resends')
        p.sentAt = this.ledger.now()
        const body = { content: `chaos ${p.cmid}`, client_msg_id: p.cmid }
        const r = await withTimeout(ep.rest.raw('POST', path, body, this.token), REST_TIMEOUT_MS)
        this.ledger.httpAnswer('REST send', r.status, r.headers, r.text)
        if (r.status === 200 || r.status === 201) {
          this.onAck(p.cmid, JSON.parse(r.text) as Stored)
          return
        }
        if (r.status === 404 || r.status === 403) {
          this.outbox.delete(p.cmid)
          this.ledger.count('sends_refused_not_member')
          this.ledger.refusedSends.set(p.cmid, `HTTP ${r.status}`)
          return
        }
        if (r.status < 500 && r.status !== 429) {
          this.outbox.delete(p.cmid)
          this.ledger.violation(
            'send_refused',
            `user ${this.idx} ${p.cmid}: REST ${r.status} ${r.text.slice(0, 160)}`,
          )
          return
        }
        const after = Number(r.headers['retry-after'])
        if (Number.isFinite(after) && after > 0) wait = Math.min(after * 1000, 5000)
      } catch (err) {
        this.ledger.count(err instanceof NoAnswer ? 'rest_no_answer' : 'rest_network_errors')
        this.restAt = (this.restAt + 1) % this.endpoints.length
      }
      await sleep(wait)
    }
  }

  /**
   * A REST send whose body trickles in over `ms` (a slow mobile client) through instance `at`.
   * `started` resolves once the server has the request's headers (a second chunk is written);
   * `done` with the outcome. A failure falls back to the ordinary retried send.
   */
  slowSend(at: number, ms: number): { started: Promise<void>; done: Promise<string> } {
    const conv = this.rng.pick([...this.memberOf])
    const cmid = `u${this.idx}-${++this.sent}`
    const p: Pending = { cmid, conv, via: 'rest', sentAt: this.ledger.now(), session: 0 }
    this.outbox.set(cmid, p)
    this.ledger.count('sends')
    const base = (this.endpoints[at] as Endpoint).ws.replace(/^ws/, 'http')
    const path = `/api/v1/chat/conversations/${conv}/messages`
    const body = { content: `chaos ${cmid}`, client_msg_id: cmid }
    const { started, done } = tricklePost(base, path, body, this.token, this.slowAgent, ms)
    const outcome = done.then(
      (r) => {
        this.ledger.httpAnswer('slow REST send', r.status, r.headers, r.text)
        if (r.status === 200 || r.status === 201) this.onAck(cmid, JSON.parse(r.text) as Stored)
        else void this.restSend(p)
        return String(r.status)
      },
      () => {
        this.ledger.count('rest_network_errors')
        void this.restSend(p)
        return 'connection error'
      },
    )
    return { started, done: outcome }
  }

  /** Signs in again (exercises the login path, whose limiter lives in Redis); `at`: through that instance. */
  async login(at = this.restAt): Promise<string> {
    const ep = this.endpoints[at] as Endpoint
    try {
      const body = { email: this.account.email, password: this.account.password }
      const r = await withTimeout(ep.rest.raw('POST', '/api/v1/auth/login', body), REST_TIMEOUT_MS)
      this.ledger.httpAnswer('login', r.status, r.headers, r.text)
      if (r.status === 200) this.token = (JSON.parse(r.text) as { access_token: string }).access_token
      return String(r.status)
    } catch (err) {
      this.ledger.count(err instanceof NoAnswer ? 'rest_no_answer' : 'rest_network_errors')
      this.restAt = (this.restAt + 1) % this.endpoints.length
      return err instanceof NoAnswer ? 'no answer' : 'connection error'
    }
  }

  /** REST through this user's current instance (the group owner's membership changes). */
  rest(): { rest: Rest; token: string; next: () => void } {
    return {
      rest: (this.endpoints[this.restAt] as Endpoint).rest,
      token: this.token,
      next: () => {
        this.restAt = (this.restAt + 1) % this.endpoints.length
      },
    }
  }

  stop(): void {
    this.stopped = true
    this.slowAgent.destroy()
    clearTimeout(this.syncTimer)
    for (const p of this.outbox.values()) clearTimeout(p.retry)
    const ws = this.ws
    this.ws = undefined
    ws?.terminate()
  }
}
