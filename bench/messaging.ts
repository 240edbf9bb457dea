import type WebSocket from 'ws'
import { type CpuGroups, cpuPercent, cpuSample } from './cpu.js'
import { Latency, type LatencySummary, round } from './hist.js'
import type { Progress } from './progress.js'
import { pool, Rest } from './rest.js'
import { closeAll, openSocket } from './sockets.js'
import { cpuPerMessage, type ServerView, serverView } from './stages.js'
import type { BenchUser, Target } from './targets.js'

/**
 * The messaging load shared by dm, hot, fanout, cluster and ceiling: users with one socket each,
 * conversations between them, senders pacing `message.send` frames at an offered rate (open
 * loop: the schedule does not wait for acks), and a tracker that checks every delivery.
 *
 * Latency is measured on the generator's clock from the *intended* send time (carried in the
 * message content) to the frame's arrival at a recipient socket other than the sender's, so a
 * stalled generator shows up as latency instead of hiding it (no coordinated omission).
 */

export interface WorldSpec {
  users: number
  /** Conversations as lists of user indexes; index 0 creates it. Two members: a direct conversation. */
  conversations: number[][]
  /** [user index, conversation index] pairs that send, round robin. */
  senders: [number, number][]
}

interface SeqTrack {
  /** Every seq in (0, contig] has arrived. */
  contig: number
  /** Arrived seqs above contig + 1 (only when something arrived early). */
  extra: Set<number> | undefined
  max: number
}

interface Client {
  idx: number
  user: BenchUser
  ws: WebSocket | undefined
  tracks: Map<string, SeqTrack>
}

export interface Correctness {
  sent: number
  acked: number
  /** Error frames answering sends, by code. */
  errors: Record<string, number>
  /** Acked messages missing at a member socket after the final drain, summed over sockets. */
  lost: number
  duplicated: number
  out_of_order: number
  /** Sockets closed by the server while the load ran. */
  unexpected_closes: number
  /** With --webhook: acked messages whose message.created never reached the receiver, and repeats. */
  webhook_lost?: number
  webhook_duplicated?: number
  /** Per conversation, acked seqs that are not exactly 1..n (hot's gapless check). */
  seq_gaps: number
}

export interface StepResult {
  offered_per_sec: number
  seconds: number
  sent: number
  send_rate: number
  acked_per_sec: number
  /** Deliveries to member sockets other than the sender's, per second, within the step. */
  deliveries_per_sec: number
  /** deliveries_per_sec divided by recipients per message. */
  messages_per_sec: number
  recipients_per_message: number
  latency: LatencySummary
  drain_ms: number
  saturated: boolean
  cpu_percent: CpuGroups
  /** µs of CPU per delivered message, by process group. */
  cpu_us_per_message: CpuGroups
  /** The server's own metrics over the step (chat server only). */
  server?: ServerView | undefined
  /** With --webhook: message.created deliveries the receiver got in the step, and their lag from commit. */
  webhook?: { deliveries_per_sec: number; lag: LatencySummary } | undefined
}

const NEW = '{"type":"message.new"'
const ACK = '{"type":"message.ack"'
const CONV_KEY = '"conversation_id":"'
const SEQ_KEY = '"seq":'
const CONTENT_KEY = '"content":"'

function intAt(s: string, from: number): number {
  let n = 0
  for (let i = from; i < s.length; i++) {
    const d = s.charCodeAt(i) - 48
    if (d < 0 || d > 9) break
    n = n * 10 + d
  }
  return n
}

export class MessagingLoad {
  readonly clients: Client[]
  private readonly convIds: string[]
  private readonly convMembers: number[][]
  private readonly memberCount = new Map<string, number>()
  private readonly ackedSeqs = new Map<string, number[]>()
  private sent = 0
  private acked = 0
  private errorCount = 0
  private readonly errors: Record<string, number> = {}
  private duplicated = 0
  private outOfOrder = 0
  private unexpectedCloses = 0
  /** Deliveries to non-sender sockets, and to every socket. */
  private deliveries = 0
  private allDeliveries = 0
  private expectedDeliveries = 0
  private readonly stepLatency: Latency[] = []
  private live = new Latency()
  private closing = false
  private nextSender = 0
  private msgCounter = 0
  private readonly padding: string
  readonly recipientsPerMessage: number

  private constructor(
    private readonly target: Target,
    users: BenchUser[],
    convIds: string[],
    private readonly spec: WorldSpec,
    size: number,
  ) {
    this.clients = users.map((user, idx) => ({ idx, user, ws: undefined, tracks: new Map() }))
    this.convIds = convIds
    this.convMembers = spec.conversations
    spec.conversations.forEach((m, i) => {
      this.memberCount.set(convIds[i] as string, m.length)
      this.ackedSeqs.set(convIds[i] as string, [])
    })
    this.padding = 'x'.repeat(Math.max(0, size - 24))
    const recipients = spec.senders.map(([, c]) => (spec.conversations[c]?.length ?? 1) - 1)
    this.recipientsPerMessage = recipients.reduce((a, b) => a + b, 0) / Math.max(1, recipients.length)
  }

  /** Creates the users and conversations on the target and opens one socket per user. */
  static async setup(
    target: Target,
    spec: WorldSpec,
    size: number,
    progress: Progress,
  ): Promise<MessagingLoad> {
    const users = await target.createUsers(spec.users)
    progress.log(`  ${users.length} users ready`)
    let convIds: string[]
    if (target.kind === 'relay') {
      convIds = spec.conversations.map(() => crypto.randomUUID())
    } else {
      const rest = new Rest(target.instances[0]?.httpUrl as string)
      convIds = await pool(spec.conversations, 16, async (members) => {
        const owner = users[members[0] as number] as BenchUser
        const others = members.slice(1).map((m) => (users[m] as BenchUser).id)
        const conv =
          members.length === 2
            ? await rest.call<{ id: string }>(
                'POST',
                '/api/v1/chat/conversations',
                { recipient_id: others[0] },
                owner.token,
              )
            : await rest.call<{ id: string }>(
                'POST',
                '/api/v1/chat/groups',
                { title: 'bench', member_ids: others },
                owner.token,
              )
        return conv.id
      })
      rest.close()
    }
    progress.log(`  ${convIds.length} conversations ready`)
    const load = new MessagingLoad(target, users, convIds, spec, size)
    await load.connect()
    progress.log(`  ${users.length} sockets open`)
    return load
  }

  private async connect(): Promise<void> {
    const byUser = new Map<number, string[]>()
    this.convMembers.forEach((members, c) => {
      for (const m of members) byUser.set(m, [...(byUser.get(m) ?? []), this.convIds[c] as string])
    })
    const n = this.target.instances.length
    await pool(this.clients, 32, async (client) => {
      const inst = this.target.instances[client.idx % n]
      if (!inst) throw new Error('no instance')
      const url =
        this.target.kind === 'relay'
          ? `${inst.wsUrl}/?user=${client.user.id}&convs=${(byUser.get(client.idx) ?? []).join(',')}`
          : `${inst.wsUrl}/api/v1/chat/ws`
      const headers: Record<string, string> =
        this.target.kind === 'relay' ? {} : { authorization: `Bearer ${client.user.token}` }
      const ws = await openSocket(url, { headers, timeoutMs: 60_000 }, (frame) => this.onFrame(client, frame))
      ws.on('close', () => {
        if (!this.closing) this.unexpectedCloses++
      })
      ws.on('error', () => undefined)
      client.ws = ws
    })
  }

  // ---- receiving ----

  private onFrame(client: Client, s: string): void {
    if (s.startsWith(NEW)) {
      const c = s.indexOf(CONV_KEY) + CONV_KEY.length
      const seqAt = s.indexOf(SEQ_KEY, c)
      const ct = s.indexOf(CONTENT_KEY, seqAt)
      if (c >= CONV_KEY.length && seqAt > 0 && ct > 0) {
        const conv = s.slice(c, c + 36)
        const seq = intAt(s, seqAt + SEQ_KEY.length)
        const a = ct + CONTENT_KEY.length
        const b1 = s.indexOf('|', a)
        const b2 = s.indexOf('|', b1 + 1)
        const b3 = s.indexOf('|', b2 + 1)
        this.onDeliver(client, conv, seq, Number(s.slice(a, b1)), intAt(s, b1 + 1), intAt(s, b2 + 1), b3 > 0)
        return
      }
    }
    if (s.startsWith(ACK)) {
      const c = s.indexOf(CONV_KEY) + CONV_KEY.length
      const seqAt = s.indexOf(SEQ_KEY, c)
      if (c >= CONV_KEY.length && seqAt > 0) {
        this.onAck(s.slice(c, c + 36), intAt(s, seqAt + SEQ_KEY.length))
        return
      }
    }
    let f: { type?: string; code?: string; client_msg_id?: unknown }
    try {
      f = JSON.parse(s)
    } catch {
      return
    }
    if (f.type === 'error' && f.client_msg_id !== undefined) {
      this.errorCount++
      const code = f.code ?? 'unknown'
      this.errors[code] = (this.errors[code] ?? 0) + 1
    }
  }

  private onAck(conv: string, seq: number): void {
    this.acked++
    this.ackedSeqs.get(conv)?.push(seq)
    this.expectedDeliveries += this.memberCount.get(conv) ?? 0
  }

  private onDeliver(
    client: Client,
    conv: string,
    seq: number,
    sentAt: number,
    sender: number,
    step: number,
    ours: boolean,
  ): void {
    let t = client.tracks.get(conv)
    if (!t) {
      t = { contig: 0, extra: undefined, max: 0 }
      client.tracks.set(conv, t)
    }
    if (seq <= t.contig || t.extra?.has(seq)) {
      this.duplicated++
      return
    }
    if (seq < t.max) this.outOfOrder++
    if (seq > t.max) t.max = seq
    if (seq === t.contig + 1) {
      t.contig = seq
      if (t.extra) {
        while (t.extra.delete(t.contig + 1)) t.contig++
        if (t.extra.size === 0) t.extra = undefined
      }
    } else {
      t.extra ??= new Set()
      t.extra.add(seq)
    }
    this.allDeliveries++
    if (!ours || sender === client.idx) return
    this.deliveries++
    const ms = performance.now() - sentAt
    this.stepLatency[step]?.recordMs(ms)
    this.live.recordMs(ms)
  }

  // ---- sending ----

  private sendOne(step: number, intendedAt: number): void {
    const [userIdx, convIdx] = this.spec.senders[this.nextSender++ % this.spec.senders.length] as [
      number,
      number,
    ]
    const ws = this.clients[userIdx]?.ws
    if (ws?.readyState !== 1) return
    const content = `${intendedAt.toFixed(3)}|${userIdx}|${step}|${this.padding}`
    ws.send(
      `{"type":"message.send","conversation_id":"${this.convIds[convIdx]}","content":"${content}","client_msg_id":"m${this.msgCounter++}"}`,
    )
    this.sent++
  }

  /** Sends `rate` messages/s for `seconds`, on schedule whatever the answers do. */
  private pace(step: number, rate: number, seconds: number): Promise<void> {
    const total = Math.max(1, Math.round(rate * seconds))
    const t0 = performance.now()
    let i = 0
    return new Promise((resolve) => {
      const tick = () => {
        const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000) + 1)
        while (i < due) {
          this.sendOne(step, t0 + (i * 1000) / rate)
          i++
        }
        if (i >= total) resolve()
        else setTimeout(tick, 1)
      }
      tick()
    })
  }

  /** Waits until every sent message is answered and every acked one delivered everywhere. */
  private async drain(timeoutMs: number): Promise<number> {
    const t0 = performance.now()
    while (performance.now() - t0 < timeoutMs) {
      if (this.acked + this.errorCount >= this.sent && this.allDeliveries >= this.expectedDeliveries) break
      await new Promise((r) => setTimeout(r, 20))
    }
    return Math.round(performance.now() - t0)
  }

  /** Live figures for the progress bar; resets the live latency window. */
  liveStatus(): string {
    const p99 = this.live.summary().p99_ms
    this.live = new Latency()
    const err = this.errorCount + this.unexpectedCloses
    return `sent ${this.sent} acked ${this.acked} delivered ${this.deliveries} p99 ${p99} ms${err ? ` ERRORS ${err}` : ''}`
  }

  /**
   * Runs the ramp: each step paces its offered rate for `seconds`, then drains. With
   * `stopOnSaturation`, stops after the first step that cannot keep up.
   */
  async ramp(
    steps: number[],
    seconds: number,
    opts: {
      drainSeconds: number
      stopOnSaturation: boolean
      onStep?: (i: number) => void
      onStepDone?: (r: StepResult) => void
    },
  ): Promise<StepResult[]> {
    const results: StepResult[] = []
    for (const [i, rate] of steps.entries()) {
      opts.onStep?.(i)
      this.stepLatency[i] = new Latency()
      const metricsBefore = await this.target.metrics?.()
      const before = {
        sent: this.sent,
        acked: this.acked,
        deliveries: this.deliveries,
        cpu: cpuSample(this.target.pids()),
        hooks: this.target.webhook?.received ?? 0,
      }
      this.target.webhook?.takeLag()
      const t0 = performance.now()
      await this.pace(i, rate, seconds)
      // The last message is due just before the nominal end: measure over the nominal window.
      const elapsed = Math.max(seconds, (performance.now() - t0) / 1000)
      const after = {
        sent: this.sent,
        acked: this.acked,
        deliveries: this.deliveries,
        cpu: cpuSample(this.target.pids()),
        hooks: this.target.webhook?.received ?? 0,
      }
      const metricsAfter = metricsBefore && (await this.target.metrics?.())
      const drainMs = await this.drain(opts.drainSeconds * 1000)
      const latency = (this.stepLatency[i] as Latency).summary()
      const deliveriesPerSec = (after.deliveries - before.deliveries) / elapsed
      const cpu = cpuPercent(before.cpu, after.cpu)
      const saturated =
        deliveriesPerSec < 0.9 * rate * this.recipientsPerMessage ||
        latency.p99_ms > 2000 ||
        drainMs >= opts.drainSeconds * 1000
      results.push({
        offered_per_sec: rate,
        seconds: round(elapsed, 2),
        sent: after.sent - before.sent,
        send_rate: Math.round((after.sent - before.sent) / elapsed),
        acked_per_sec: Math.round((after.acked - before.acked) / elapsed),
        deliveries_per_sec: Math.round(deliveriesPerSec),
        messages_per_sec: Math.round(deliveriesPerSec / Math.max(1, this.recipientsPerMessage)),
        recipients_per_message: this.recipientsPerMessage,
        latency,
        drain_ms: drainMs,
        saturated,
        cpu_percent: cpu,
        cpu_us_per_message: cpuPerMessage(cpu, deliveriesPerSec / Math.max(1, this.recipientsPerMessage)),
        server: metricsBefore && metricsAfter ? serverView(metricsBefore, metricsAfter, elapsed) : undefined,
        webhook: this.target.webhook && {
          deliveries_per_sec: Math.round((after.hooks - before.hooks) / elapsed),
          lag: this.target.webhook.takeLag(),
        },
      })
      opts.onStepDone?.(results.at(-1) as StepResult)
      if (saturated && opts.stopOnSaturation) break
    }
    return results
  }

  /** Closes the sockets and counts what never arrived. */
  async finish(): Promise<Correctness> {
    this.closing = true
    let lost = 0
    let gaps = 0
    this.convMembers.forEach((members, c) => {
      const id = this.convIds[c] as string
      const seqs = this.ackedSeqs.get(id) ?? []
      const sorted = [...seqs].sort((a, b) => a - b)
      sorted.forEach((s, i) => {
        if (s !== i + 1) gaps++
      })
      for (const m of members) {
        const t = this.clients[m]?.tracks.get(id)
        for (const s of seqs) if (!t || !(s <= t.contig || t.extra?.has(s))) lost++
      }
    })
    await closeAll(this.clients.map((c) => c.ws).filter((w): w is WebSocket => w !== undefined))
    const hooks = this.target.webhook
    if (hooks) await hooks.waitFor(this.acked, 60_000)
    return {
      ...(hooks
        ? { webhook_lost: Math.max(0, this.acked - hooks.received), webhook_duplicated: hooks.duplicated }
        : {}),
      sent: this.sent,
      acked: this.acked,
      errors: { ...this.errors },
      lost,
      duplicated: this.duplicated,
      out_of_order: this.outOfOrder,
      unexpected_closes: this.unexpectedCloses,
      seq_gaps: gaps,
    }
  }
}

/** dm world: users paired into users/2 direct conversations; everyone sends into theirs. */
export function dmWorld(users: number): WorldSpec {
  const conversations = Array.from({ length: users / 2 }, (_, k) => [2 * k, 2 * k + 1])
  const senders: [number, number][] = Array.from({ length: users }, (_, i) => [i, Math.floor(i / 2)])
  return { users, conversations, senders }
}

/** One group of `members`; the first `senders` of them send. */
export function groupWorld(members: number, senders: number): WorldSpec {
  return {
    users: members,
    conversations: [Array.from({ length: members }, (_, i) => i)],
    senders: Array.from({ length: senders }, (_, i) => [i, 0] as [number, number]),
  }
}
