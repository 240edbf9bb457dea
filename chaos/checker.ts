import type postgres from 'postgres'
import type { Episode, Ledger } from './ledger.js'
import type { World } from './world.js'

/**
 * The end-of-run invariants, read from PostgreSQL directly (never through the server under test)
 * and from what the clients recorded:
 *  - every acked message is stored exactly once, with the seq and id it was acked with;
 *  - seq is gapless per conversation (1..last_seq, each once);
 *  - every member socket received every seq up to its final cursor exactly once, in order, across
 *    reconnects (the clients check order and repeats as frames arrive; gaps are judged here);
 *  - at the end every member has everything, and nothing is left unacked.
 */

interface DbState {
  lastSeq: Map<string, number>
}

async function dbState(sql: postgres.Sql, ids: string[]): Promise<DbState> {
  const convs = await sql<{ id: string; last_seq: string }[]>`
    select id, last_seq from conversations where id = any(${ids}::uuid[])`
  return { lastSeq: new Map(convs.map((c) => [c.id, Number(c.last_seq)])) }
}

/**
 * The highest seq `user` is owed in a conversation whose last seq is `last`: seqs committed while
 * it was out of the group (see Episode) are not owed, so a removal at the very end can leave the
 * member's cursor below `last` with nothing missing.
 */
export function owedUpTo(ledger: Ledger, user: number, conv: string, last: number): number {
  let m = last
  const episodes = ledger.episodes.filter((e) => e.user === user && e.conv === conv)
  for (let moved = true; moved; ) {
    moved = false
    for (const e of episodes) {
      if (m > e.lo && m <= (e.hi ?? Number.POSITIVE_INFINITY)) {
        m = e.lo
        moved = true
      }
    }
  }
  return m
}

/** What a client still lacks: per conversation, (cursor, the seq it must reach). */
function shortfalls(
  world: World,
  ledger: Ledger,
  db: DbState,
): { user: number; conv: string; have: number; want: number }[] {
  const out: { user: number; conv: string; have: number; want: number }[] = []
  for (const c of world.clients) {
    for (const conv of c.deliveries.known) {
      const have = c.deliveries.cursor(conv)
      const want = owedUpTo(ledger, c.idx, conv, db.lastSeq.get(conv) ?? 0)
      if (have < want) out.push({ user: c.idx, conv, have, want })
    }
  }
  return out
}

/**
 * Waits until the system has converged: every outbox empty, every client connected and caught
 * up, no member out of the group. Returns how long it took, or what was still missing.
 */
export async function converge(
  world: World,
  ledger: Ledger,
  sql: postgres.Sql,
  timeoutMs: number,
): Promise<{ ms: number; done: boolean; waitingFor: string }> {
  const t0 = performance.now()
  const ids = world.conversations.map((c) => c.id)
  let waitingFor = ''
  while (performance.now() - t0 < timeoutMs) {
    const unacked = world.clients.reduce((n, c) => n + c.outbox.size, 0)
    const offline = world.clients.filter((c) => !c.connected).length
    let behind = -1
    try {
      behind = shortfalls(world, ledger, await dbState(sql, ids)).length
    } catch {
      // PostgreSQL not answering yet
    }
    waitingFor = `${unacked} unacked sends, ${offline} clients offline, ${behind} cursors behind${world.removing ? ', a member out of the group' : ''}`
    if (unacked === 0 && offline === 0 && behind === 0 && !world.removing)
      return { ms: performance.now() - t0, done: true, waitingFor: '' }
    await new Promise((r) => setTimeout(r, 250))
  }
  return { ms: performance.now() - t0, done: false, waitingFor }
}

/**
 * Records a violation for every delivery gap not excused by a removal of that member (seqs
 * committed while it was out of the group); returns how many seqs were missed.
 */
export function judgeGaps(ledger: Ledger, label: (conv: string) => string): number {
  let missed = 0
  for (const g of ledger.gaps) {
    const episodes = ledger.episodes.filter((e) => e.user === g.user && e.conv === g.conv)
    const unexcused: number[] = []
    for (let s = g.after + 1; s < g.got; s++) {
      if (!episodes.some((e) => s > e.lo && s <= (e.hi ?? Number.POSITIVE_INFINITY))) unexcused.push(s)
    }
    if (unexcused.length === 0) continue
    missed += unexcused.length
    const first = unexcused[0] as number
    const last = unexcused.at(-1) as number
    // Where the missing run sits: ending at a removal (the feed closed before it delivered what
    // was committed before the removal), starting right after a re-add (the socket did not
    // follow the group again), or neither. Both facts are printed when both hold.
    const readd = episodes.find((e) => e.hi !== undefined && e.hi + 1 === first)
    const removal = episodes.find((e) => e.lo === last)
    const kind = removal ? removalKind(removal) : readd ? 'missed_after_readd' : 'missed_delivery'
    const facts = [
      ...(readd
        ? [`added back at ${ledger.stamp(readd.addedAtMs)}, seq <= ${readd.hi}, nothing arrived after it`]
        : []),
      ...(removal ? [removalContext(removal)] : []),
    ]
    const context = facts.length > 0 ? ` (${facts.join('; then ')})` : ''
    ledger.violation(
      kind,
      `user ${g.user} ${label(g.conv)} socket #${g.session}: after seq ${g.after} got ${g.got}, never got ${ranges(unexcused)}${context}`,
    )
  }
  return missed
}

/**
 * Two ways to lose what a removal owed, told apart because they need different fixes: the
 * removal reached an open socket that had not got everything before it yet, or the socket was
 * away then and its resume was refused (the protocol offers no way to fetch the rest).
 */
function removalKind(e: Episode): string {
  return !e.seenLive && e.refusedCursor !== undefined
    ? 'missed_after_offline_removal'
    : 'missed_around_removal'
}

function removalContext(e: Episode): string {
  const how = e.seenLive
    ? 'its socket got member.removed'
    : e.refusedCursor !== undefined
      ? `its socket was away then; the resume was refused at cursor ${e.refusedCursor}`
      : 'no member.removed seen'
  return `removed at seq >= ${e.lo}, ${how}`
}

/** Compresses sorted seqs into ranges for the report: 4-7,9. */
export function ranges(seqs: number[]): string {
  const parts: string[] = []
  for (let i = 0; i < seqs.length; ) {
    let j = i
    while (j + 1 < seqs.length && (seqs[j + 1] as number) === (seqs[j] as number) + 1) j++
    parts.push(i === j ? `${seqs[i]}` : `${seqs[i]}-${seqs[j]}`)
    i = j + 1
  }
  return parts.join(',')
}

interface Row {
  id: string
  conversation_id: string
  seq: string
  sender_id: string
  client_msg_id: string | null
}

export interface CheckSummary {
  conversations: number
  stored_messages: number
  acked_messages: number
  /** Committed, but the client never got an ack (e.g. its resend was refused after a removal). */
  stored_never_acked: number
  stored_never_acked_examples: string[]
  deliveries_missed: number
}

export async function checkInvariants(
  world: World,
  ledger: Ledger,
  sql: postgres.Sql,
): Promise<CheckSummary> {
  const ids = world.conversations.map((c) => c.id)
  const db = await dbState(sql, ids)
  const rows = await sql<
    { id: string; conversation_id: string; seq: string; sender_id: string; client_msg_id: string | null }[]
  >`
    select id, conversation_id, seq, sender_id, client_msg_id from messages
    where conversation_id = any(${ids}::uuid[]) order by conversation_id, seq`

  // Gapless seq per conversation.
  const seqs = new Map<string, number[]>()
  for (const r of rows) seqs.set(r.conversation_id, [...(seqs.get(r.conversation_id) ?? []), Number(r.seq)])
  for (const conv of ids) {
    const list = seqs.get(conv) ?? []
    const last = db.lastSeq.get(conv) ?? 0
    const bad = list.filter((s, i) => s !== i + 1)
    if (bad.length > 0 || list.length !== last)
      ledger.violation(
        'seq_not_gapless',
        `${world.label(conv)}: ${list.length} rows, last_seq ${last}, out of place: ${ranges(bad.slice(0, 20))}`,
      )
  }

  // Every acked message stored once, as acked.
  const byKey = new Map<string, Row[]>()
  for (const r of rows) {
    if (r.client_msg_id === null) continue
    const key = `${r.conversation_id}|${r.sender_id}|${r.client_msg_id}`
    byKey.set(key, [...(byKey.get(key) ?? []), r])
  }
  for (const [key, list] of byKey) {
    if (list.length > 1)
      ledger.violation(
        'stored_more_than_once',
        `${key.split('|')[2]}: ${list.length} rows (seqs ${list.map((r) => r.seq).join(',')})`,
      )
  }
  for (const [cmid, a] of ledger.acked) {
    const list = byKey.get(`${a.conv}|${a.sender}|${cmid}`) ?? []
    if (list.length === 0)
      ledger.violation('acked_not_stored', `${cmid} acked as seq ${a.seq} in ${world.label(a.conv)}`)
    else if (!list.some((r) => r.id === a.id && Number(r.seq) === a.seq))
      ledger.violation(
        'acked_differs_from_stored',
        `${cmid}: acked seq ${a.seq}, stored ${list.map((r) => r.seq).join(',')}`,
      )
  }
  let neverAcked = 0
  const neverAckedExamples: string[] = []
  for (const [key, list] of byKey) {
    const cmid = key.split('|')[2] as string
    if (ledger.acked.has(cmid)) continue
    neverAcked++
    const refused = ledger.refusedSends.get(cmid)
    if (neverAckedExamples.length < 5)
      neverAckedExamples.push(
        `${cmid} stored as seq ${list[0]?.seq} in ${world.label(list[0]?.conversation_id ?? '')}${refused ? `; the client was told ${refused}` : ''}`,
      )
  }

  let missed = judgeGaps(ledger, (conv) => world.label(conv))

  // What is still missing at the end (converge gave up): undelivered, or acked nowhere.
  for (const s of shortfalls(world, ledger, db)) {
    missed += s.want - s.have
    const open = ledger.lastEpisode(s.user, s.conv)
    const removed = open && (open.hi === undefined || open.hi === Number.POSITIVE_INFINITY)
    const client = world.clients[s.user]
    ledger.violation(
      removed ? removalKind(open) : 'not_delivered_by_end',
      `user ${s.user} ${world.label(s.conv)}: has up to seq ${s.have}, should have ${s.want}; its socket #${client?.socketNumber} ` +
        `is open on instance ${client?.instanceIndex}` +
        (removed
          ? ` (still out of the group at the end; ${removalContext(open)})`
          : open
            ? ` (last removed at ${ledger.stamp(open.removedAtMs)}, seq >= ${open.lo}, re-added at ${ledger.stamp(open.addedAtMs)}, seq <= ${open.hi})`
            : ''),
    )
  }
  for (const c of world.clients) {
    for (const p of c.outbox.values())
      ledger.violation('unacked_at_end', `user ${c.idx} ${p.cmid} (${p.via}) in ${world.label(p.conv)}`)
  }
  return {
    conversations: ids.length,
    stored_messages: rows.length,
    acked_messages: ledger.acked.size,
    stored_never_acked: neverAcked,
    stored_never_acked_examples: neverAckedExamples,
    deliveries_missed: missed,
  }
}
