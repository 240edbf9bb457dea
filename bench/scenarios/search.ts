import { Latency, type LatencySummary } from '../hist.js'
import { table } from '../report.js'
import { Rest } from '../rest.js'
import { startTarget } from '../targets.js'
import type { Context, ScenarioOutput } from './context.js'

/** Words in the generated texts: each message holds WORDS_PER_MESSAGE of them, `w0` … `w19999`. */
const VOCABULARY = 20_000
const WORDS_PER_MESSAGE = 8
const PAGE = 20

type Mode = 'word' | 'prefix' | 'substring'
interface Row {
  mode: Mode
  latency: LatencySummary
  /** Hits outside the searcher's conversations (must be 0). */
  foreign_hits: number
  /** Requests that found nothing. */
  empty: number
}

/**
 * Issue 14's search benchmark: `--messages` (1,000,000) messages spread over 1,000 conversations,
 * bulk-inserted with generate_series; one user is a member of 50 of them and searches over HTTP,
 * one request at a time, for whole words, word prefixes and substrings (pg_trgm). Goal: p99 ≤ 50 ms.
 */
export async function search(ctx: Context): Promise<ScenarioOutput> {
  const { o, progress } = ctx
  const conversations = o.smoke ? 100 : 1000
  const memberOf = o.smoke ? 10 : 50
  const perConversation = Math.max(1, Math.floor(o.messages / conversations))
  const target = await startTarget(o, ctx.id)
  try {
    const sql = target.sql
    if (!sql) throw new Error('search inserts its messages with SQL: run without --url, or set DATABASE_URL')
    const [searcher, owner] = await target.createUsers(2)
    if (!searcher || !owner) throw new Error('no users')
    const tag = `search-${ctx.id}`
    const t0 = performance.now()
    await sql(`insert into conversations (id, kind, title, created_by, last_seq)
      select gen_random_uuid(), 'group', '${tag} ' || n, '${owner.id}'::uuid, ${perConversation}
      from generate_series(1, ${conversations}) n`)
    const convRows = await sql(
      `select id, split_part(title, ' ', 2)::int as n from conversations where title like '${tag} %' order by n`,
    )
    const mine = new Set(convRows.filter((r) => Number(r.n) <= memberOf).map((r) => r.id as string))
    await sql(`insert into conversation_members (conversation_id, user_id, role)
      select id, '${owner.id}'::uuid, 'owner' from conversations where title like '${tag} %'
      union all
      select id, '${searcher.id}'::uuid, 'member' from conversations
      where title like '${tag} %' and split_part(title, ' ', 2)::int <= ${memberOf}`)
    const chunk = Math.max(1, Math.floor(100_000 / perConversation))
    let done = 0
    ctx.status = () => ({
      fraction: done / conversations,
      text: `search: inserting into ${done}/${conversations} conversations`,
    })
    for (let from = 1; from <= conversations; from += chunk) {
      const to = Math.min(conversations, from + chunk - 1)
      // Eight pseudo-random words per message: deterministic, spread evenly over the vocabulary.
      await sql(`insert into messages (id, conversation_id, seq, sender_id, content, created_at)
        select gen_random_uuid(), c.id, g, '${owner.id}'::uuid,
          (select string_agg('w' || ((g::bigint * 2654435761 + c.n * 40503 + k * 7919) % ${VOCABULARY}), ' ')
             from generate_series(1, ${WORDS_PER_MESSAGE}) k),
          now() - make_interval(secs => (${perConversation} - g) + c.n / 1000.0)
        from (select id, split_part(title, ' ', 2)::int as n from conversations
              where title like '${tag} %' and split_part(title, ' ', 2)::int between ${from} and ${to}) c
        cross join generate_series(1, ${perConversation}) g`)
      done = to
    }
    await sql('vacuum analyze messages')
    const seedSeconds = (performance.now() - t0) / 1000
    progress.log(
      `  ${perConversation * conversations} messages in ${conversations} conversations in ${seedSeconds.toFixed(1)} s`,
    )

    const rest = new Rest(target.instances[0]?.httpUrl as string)
    const word = (i: number) => `w${(i * 7_907) % VOCABULARY}`
    const queries: Record<Mode, (i: number) => string> = {
      word,
      // `w1234` → `w123`: the words starting with it (w123, w1230…w1239, …).
      prefix: (i) => word(i).slice(0, 4),
      // Digits inside words: only pg_trgm finds them.
      substring: (i) => String(100 + ((i * 37) % 900)),
    }
    const rows: Row[] = []
    await target.profileStart()
    for (const mode of ['word', 'prefix', 'substring'] as Mode[]) {
      ctx.status = () => ({ fraction: rows.length / 3, text: `search: ${mode} queries` })
      const lat = new Latency()
      let foreign = 0
      let empty = 0
      for (let i = 0; i < o.requests + 3; i++) {
        const path = `/api/v1/chat/search?q=${encodeURIComponent(queries[mode](i))}&limit=${PAGE}`
        const s = performance.now()
        const page = await rest.call<{ items: { message: { conversation_id: string } }[] }>(
          'GET',
          path,
          undefined,
          searcher.token,
        )
        if (i >= 3) lat.recordMs(performance.now() - s)
        foreign += page.items.filter((h) => !mine.has(h.message.conversation_id)).length
        if (page.items.length === 0) empty++
      }
      rows.push({ mode, latency: lat.summary(), foreign_hits: foreign, empty })
      progress.log(`  ${mode}: p50 ${lat.summary().p50_ms} ms, p99 ${lat.summary().p99_ms} ms`)
    }
    rest.close()
    const summary: Record<string, number | null> = {
      messages: perConversation * conversations,
      conversations,
      member_of: memberOf,
      seed_seconds: Math.round(seedSeconds * 10) / 10,
      worst_http_p99_ms: Math.max(...rows.map((r) => r.latency.p99_ms)),
      foreign_hits: rows.reduce((a, r) => a + r.foreign_hits, 0),
    }
    for (const r of rows) {
      summary[`${r.mode}_http_p50_ms`] = r.latency.p50_ms
      summary[`${r.mode}_http_p99_ms`] = r.latency.p99_ms
    }
    return {
      target: target.describe,
      summary,
      correctness: null,
      details: { rows, page_size: PAGE, vocabulary: VOCABULARY },
      text: table(
        ['query', 'requests', 'HTTP p50 ms', 'HTTP p99 ms', 'HTTP max ms', 'empty pages', 'foreign hits'],
        rows.map((r) => [
          r.mode,
          r.latency.count,
          r.latency.p50_ms,
          r.latency.p99_ms,
          r.latency.max_ms,
          r.empty,
          r.foreign_hits,
        ]),
      ),
    }
  } finally {
    await target.stop()
  }
}
