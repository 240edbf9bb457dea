import type { ChatClient, ChatClientOptions, Message, OutboxEntry } from '@chat-api/client'
import fc from 'fast-check'
import { FaultProxy, seededRandom } from './fault-proxy.js'
import { signUp, until } from './sdk.js'

/** One user action of a run: who sends, into which conversation, after how long. */
export interface SendOp {
  from: 0 | 1
  conversation: 0 | 1
  text: string
  pauseMs: number
}

/** Random user actions: who, where, what, at which pace. */
export const sendOps = (minLength: number, maxLength: number): fc.Arbitrary<SendOp[]> =>
  fc.array(
    fc.record({
      from: fc.constantFrom(0 as const, 1 as const),
      conversation: fc.constantFrom(0 as const, 1 as const),
      // What the server accepts: not blank once trimmed (a blank one settles failed, by design).
      text: fc.string({ minLength: 1, maxLength: 40 }).filter((t) => t.trim().length > 0),
      pauseMs: fc.nat({ max: 100 }),
    }),
    { minLength, maxLength },
  )

/** The figures that must stay zero. */
export const MUST_BE_ZERO = [
  'lost',
  'duplicated',
  'reordered',
  'historyMismatches',
  'outboxLeft',
  'storedTwice',
  'sendOrder',
] as const

export interface FaultRunFigures {
  runs: number
  messages: number
  /** Deliveries checked: messages × member clients. */
  deliveries: number
  faults: number
  drops: number
  resets: number
  stalls: number
  connections: number
  lost: number
  duplicated: number
  reordered: number
  /** Messages whose delivered copy differs from history, or history rows no client showed. */
  historyMismatches: number
  /** Entries left in an outbox, or settled `failed`. */
  outboxLeft: number
  /** Messages stored more than once (same client_msg_id at two seqs). */
  storedTwice: number
  /** A user's messages stored in another order than they composed them (per conversation). */
  sendOrder: number
}

export const emptyFigures = (): FaultRunFigures => ({
  runs: 0,
  messages: 0,
  deliveries: 0,
  faults: 0,
  drops: 0,
  resets: 0,
  stalls: 0,
  connections: 0,
  lost: 0,
  duplicated: 0,
  reordered: 0,
  historyMismatches: 0,
  outboxLeft: 0,
  storedTwice: 0,
  sendOrder: 0,
})

/** Client settings for a bad network: short heartbeat, quick backoff, short request timeout. */
const clientOptions = (seed: number): Partial<ChatClientOptions> => ({
  heartbeat: { intervalMs: 250, timeoutMs: 1_000 },
  backoff: { baseMs: 25, capMs: 400 },
  requestTimeoutMs: 5_000,
  random: seededRandom(seed ^ 0x5bd1e995),
})

/**
 * Two users with a direct conversation and a group, both connected through a fault-injecting
 * proxy, send `ops` while it drops, resets and stalls their connections; then the network goes
 * quiet and everything must settle. Adds what it measured to `figures`; the caller asserts on
 * the zeros.
 */
export async function faultRun(
  serverUrl: string,
  seed: number,
  ops: SendOp[],
  figures: FaultRunFigures,
): Promise<void> {
  const proxy = await FaultProxy.start(serverUrl, { seed })
  const clients: ChatClient[] = []
  try {
    const ann = await signUp(proxy.url, 'Ann', clientOptions(seed))
    const bob = await signUp(proxy.url, 'Bob', clientOptions(seed + 1))
    clients.push(ann, bob)
    const bobId = bob.user?.id ?? ''
    const dm = await ann.conversations.openDirect(bobId)
    const group = await ann.conversations.createGroup({ title: `g${seed}`, member_ids: [bobId] })
    const conversations = [dm.id, group.id]
    const seen = clients.map(() => new Map<string, Message[]>(conversations.map((id) => [id, []])))
    clients.forEach((c, i) => {
      c.on('message', (e) => seen[i]?.get(e.conversationId)?.push(e.message))
    })
    await Promise.all(clients.map((c) => c.connect()))

    proxy.chaos()
    const entries: { client: ChatClient; entry: OutboxEntry }[] = []
    for (const op of ops) {
      // The pause is the user's pace (input to the property), not a wait for anything.
      if (op.pauseMs > 0) await new Promise((r) => setTimeout(r, op.pauseMs))
      const client = clients[op.from] as ChatClient
      entries.push({ client, entry: client.send(conversations[op.conversation] as string, op.text) })
    }
    const settled = await withDeadline(
      Promise.all(entries.map(({ client, entry }) => client.settled(entry.id))),
      60_000,
      'outbox entries to settle',
    )
    proxy.quiet()

    // Every stored message reaches both members: wait for each client's cursor to reach the end.
    const last = new Map<string, number>()
    for (const e of settled) {
      const seq = e.message?.seq ?? 0
      if (seq > (last.get(e.conversationId) ?? 0)) last.set(e.conversationId, seq)
    }
    for (const client of clients) {
      await until(
        client,
        () => conversations.every((id) => (client.lastDelivered(id) ?? 0) >= (last.get(id) ?? 0)),
        'every message delivered',
        60_000,
      )
    }

    figures.runs++
    figures.messages += ops.length
    figures.outboxLeft += settled.filter((e) => e.status !== 'sent').length
    figures.sendOrder += composeOrderViolations(entries.map((e, i) => ({ ...e, settled: settled[i] })))
    figures.outboxLeft += clients.reduce((n, c) => n + c.pending().length, 0)
    for (const id of conversations) {
      const history = await readAll(ann, id)
      figures.storedTwice += history.length - new Set(history.map((m) => m.client_msg_id)).size
      const sentHere = settled.filter((e) => e.conversationId === id).length
      figures.historyMismatches += Math.abs(history.length - sentHere)
      clients.forEach((_, i) => {
        const got = seen[i]?.get(id) ?? []
        figures.deliveries += got.length
        compare(got, history, figures)
      })
    }
  } finally {
    for (const c of clients) c.disconnect()
    figures.faults += proxy.faults
    figures.drops += proxy.stats.drop
    figures.resets += proxy.stats.reset
    figures.stalls += proxy.stats.stall
    figures.connections += proxy.stats.connections
    await proxy.close()
  }
}

/** Counts lost, duplicated and reordered deliveries, and copies that differ from history. */
function compare(got: Message[], history: Message[], figures: FaultRunFigures): void {
  const seqs = got.map((m) => m.seq)
  figures.duplicated += seqs.length - new Set(seqs).size
  for (let i = 1; i < seqs.length; i++) if ((seqs[i] ?? 0) <= (seqs[i - 1] ?? 0)) figures.reordered++
  const bySeq = new Map(got.map((m) => [m.seq, m]))
  for (const h of history) {
    const m = bySeq.get(h.seq)
    if (!m) figures.lost++
    else if (m.id !== h.id || m.content !== h.content || m.client_msg_id !== h.client_msg_id)
      figures.historyMismatches++
  }
}

/** Per client and conversation, the stored seqs of its sends must rise in compose order. */
function composeOrderViolations(
  sends: { client: ChatClient; entry: OutboxEntry; settled: OutboxEntry | undefined }[],
): number {
  const lastSeq = new Map<string, number>()
  let violations = 0
  for (const { client, entry, settled } of sends) {
    const key = `${client.user?.id}:${entry.conversationId}`
    const seq = settled?.message?.seq ?? 0
    if (seq <= (lastSeq.get(key) ?? 0)) violations++
    lastSeq.set(key, seq)
  }
  return violations
}

async function readAll(client: ChatClient, conversationId: string): Promise<Message[]> {
  const all: Message[] = []
  let after = 0
  for (;;) {
    const page = await client.history(conversationId, { afterSeq: after, limit: 100 })
    all.push(...page.items)
    if (page.next_after_seq === null || page.items.length === 0) return all
    after = page.next_after_seq
  }
}

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer))
}
