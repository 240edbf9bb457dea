import { Latency, type LatencySummary } from '../hist.js'
import { table } from '../report.js'
import { Rest } from '../rest.js'
import { startTarget } from '../targets.js'
import type { Context, ScenarioOutput } from './context.js'

const PAGE = 50
const CHUNK = 100_000

interface Row {
  mode: 'keyset' | 'skip'
  depth: number
  latency: LatencySummary
  /** PostgreSQL execution time of the page query alone (EXPLAIN ANALYZE), as often as the HTTP requests. */
  sql: LatencySummary
  wrong_pages: number
}

/**
 * One conversation of `messages` messages, bulk-inserted with generate_series; then page latency
 * over HTTP (auth, membership check, query, serialization) at each depth, for the keyset cursor
 * (`after_seq`) and for the seed's `skip`/`limit`. Requests are sequential: latency, not load.
 */
export async function history(ctx: Context): Promise<ScenarioOutput> {
  const { o, progress } = ctx
  const target = await startTarget(o, ctx.id)
  try {
    const sql = target.sql
    if (!sql)
      throw new Error(
        'history inserts its messages with SQL: run without --url, or set DATABASE_URL to the target database',
      )
    const [owner, peer] = await target.createUsers(2)
    if (!owner || !peer) throw new Error('no users')
    const rest = new Rest(target.instances[0]?.httpUrl as string)
    const conv = await rest.call<{ id: string }>(
      'POST',
      '/api/v1/chat/conversations',
      { recipient_id: peer.id },
      owner.token,
    )
    const n = o.messages
    const t0 = performance.now()
    let done = 0
    ctx.status = () => ({ fraction: done / n, text: `history: inserting ${done}/${n} messages` })
    for (let from = 1; from <= n; from += CHUNK) {
      const to = Math.min(n, from + CHUNK - 1)
      await sql(`insert into messages (id, conversation_id, seq, sender_id, content, created_at)
        select gen_random_uuid(), '${conv.id}'::uuid, g, '${owner.id}'::uuid,
               'history message ' || g || ': lorem ipsum dolor sit amet, consectetur adipiscing elit',
               now() - make_interval(secs => (${n} - g) / 1000.0)
        from generate_series(${from}, ${to}) g`)
      done = to
    }
    await sql(`update conversations set last_seq = ${n}, last_activity_at = now() where id = '${conv.id}'`)
    // Vacuum now, so autovacuum (due after a million inserts) does not run during the measurement.
    await sql('vacuum analyze messages')
    const seedSeconds = (performance.now() - t0) / 1000
    progress.log(`  ${n} messages inserted in ${seedSeconds.toFixed(1)} s`)

    await target.profileStart()
    const depths = o.depths.filter((d) => d < n)
    const plan: { mode: 'keyset' | 'skip'; depth: number; requests: number }[] = depths.flatMap((depth) => [
      { mode: 'keyset' as const, depth, requests: o.requests },
      { mode: 'skip' as const, depth, requests: o.skipRequests },
    ])
    const total = plan.reduce((a, p) => a + p.requests, 0)
    let measured = 0
    const rows: Row[] = []
    for (const p of plan) {
      ctx.status = () => ({
        fraction: measured / total,
        text: `history: ${p.mode} pages at depth ${p.depth}`,
      })
      const path =
        p.mode === 'keyset'
          ? `/api/v1/chat/conversations/${conv.id}/messages?after_seq=${p.depth}&limit=${PAGE}`
          : `/api/v1/chat/conversations/${conv.id}/messages?skip=${p.depth}&limit=${PAGE}`
      const expected = Math.min(PAGE, n - p.depth)
      let wrong = 0
      const check = (page: { items: { seq: number }[] }) => {
        if (page.items.length !== expected || page.items[0]?.seq !== p.depth + 1) wrong++
      }
      for (let i = 0; i < 3; i++) check(await rest.call('GET', path, undefined, owner.token))
      const lat = new Latency()
      for (let i = 0; i < p.requests; i++) {
        const s = performance.now()
        const page = await rest.call<{ items: { seq: number }[] }>('GET', path, undefined, owner.token)
        lat.recordMs(performance.now() - s)
        check(page)
        measured++
      }
      const query =
        p.mode === 'keyset'
          ? `select * from messages where conversation_id = '${conv.id}' and seq > ${p.depth} order by seq asc limit ${PAGE + 1}`
          : `select * from messages where conversation_id = '${conv.id}' order by seq asc limit ${PAGE + 1} offset ${p.depth}`
      // The page query alone, as PostgreSQL executes it (EXPLAIN ANALYZE), as many times.
      const sqlLat = new Latency()
      for (let i = 0; i < p.requests; i++) {
        const [r] = await sql(`explain (analyze, format json) ${query}`)
        const plan = (r?.['QUERY PLAN'] ?? r?.['query plan']) as
          | { 'Execution Time'?: number }[]
          | string
          | undefined
        const parsed = typeof plan === 'string' ? (JSON.parse(plan) as { 'Execution Time'?: number }[]) : plan
        const t = parsed?.[0]?.['Execution Time']
        if (typeof t === 'number') sqlLat.recordMs(t)
      }
      rows.push({
        mode: p.mode,
        depth: p.depth,
        latency: lat.summary(),
        sql: sqlLat.summary(),
        wrong_pages: wrong,
      })
      progress.log(
        `  ${p.mode} depth ${p.depth}: p50 ${rows.at(-1)?.latency.p50_ms} ms, p99 ${rows.at(-1)?.latency.p99_ms} ms`,
      )
    }
    rest.close()
    const keyset = rows.filter((r) => r.mode === 'keyset')
    const summary: Record<string, number | null> = {
      messages: n,
      seed_seconds: Math.round(seedSeconds * 10) / 10,
      keyset_worst_http_p99_ms: Math.max(...keyset.map((r) => r.latency.p99_ms)),
      keyset_worst_sql_p99_ms: Math.max(...keyset.map((r) => r.sql.p99_ms)),
    }
    for (const r of rows) {
      summary[`${r.mode}_http_p50_ms_at_${r.depth}`] = r.latency.p50_ms
      summary[`${r.mode}_http_p99_ms_at_${r.depth}`] = r.latency.p99_ms
      summary[`${r.mode}_sql_p99_ms_at_${r.depth}`] = r.sql.p99_ms
    }
    const wrongPages = rows.reduce((a, r) => a + r.wrong_pages, 0)
    return {
      target: target.describe,
      summary: { ...summary, wrong_pages: wrongPages },
      correctness: null,
      details: { rows, page_size: PAGE },
      text: table(
        [
          'mode',
          'depth',
          'requests',
          'HTTP p50 ms',
          'HTTP p99 ms',
          'HTTP max ms',
          'SQL p50 ms',
          'SQL p99 ms',
          'wrong pages',
        ],
        rows.map((r) => [
          r.mode,
          r.depth,
          r.latency.count,
          r.latency.p50_ms,
          r.latency.p99_ms,
          r.latency.max_ms,
          r.sql.p50_ms,
          r.sql.p99_ms,
          r.wrong_pages,
        ]),
      ),
    }
  } finally {
    await target.stop()
  }
}
