import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { loadavg } from 'node:os'
import { Redis } from 'ioredis'
import postgres from 'postgres'
import { newId } from '../src/lib/ids.js'
import { openDatabase } from '../src/store/db.js'
import { type SendRequest, storeBatch } from '../src/store/message-batch.js'
import { messagePage } from '../src/store/messages.js'
import { primaryReads, ReplicaReads } from '../src/store/read-replica.js'
import { migrateUpTo } from '../test/helpers/migrations.js'
import { createTestDatabase } from '../test/helpers/pg.js'
import { PrivatePostgres } from '../test/helpers/private-postgres.js'
import { PrivateRedis } from '../test/helpers/private-redis.js'
import { freePort } from '../test/helpers/ws-client.js'

/**
 * The figures of docs/scaling.md ("From one box to 1,000 instances"), one measurement each:
 *
 *   npx tsx bench/scaling.ts pubsub [classic|sharded]  Pub/Sub messages/s through one Redis (one shard)
 *   npx tsx bench/scaling.ts subscriptions             Redis memory and time per channel subscription
 *   npx tsx bench/scaling.ts inserts                   PostgreSQL rows/s on the message insert path
 *   npx tsx bench/scaling.ts migration                 time of migration 0005 per million messages
 *   npx tsx bench/scaling.ts replica                   history reads through a replica while writes go on
 *
 * Redis runs are made on a private redis-server (same binary as the shared one) on a spare port,
 * so nobody else's traffic is in the figure and nobody else's tests feel the load. PostgreSQL runs
 * use a scratch database on TEST_DATABASE_URL's server (dropped afterwards).
 */

const PAYLOAD = 'x'.repeat(400) // about a message.created event of a short message
const log = (what: string, fields: Record<string, unknown>) =>
  console.log(JSON.stringify({ what, load_average: loadavg().map((l) => +l.toFixed(2)), ...fields }))

async function withRedis<T>(run: (url: string, port: number) => Promise<T>): Promise<T> {
  const redis = new PrivateRedis(await freePort())
  await redis.start()
  try {
    return await run(redis.url, redis.port)
  } finally {
    await redis.stop()
  }
}

async function redisCpuSeconds(r: Redis): Promise<number> {
  const info = await r.info('cpu')
  const get = (k: string) =>
    Number(/^(\w+):(.*)$/m.exec(info.split('\n').find((l) => l.startsWith(`${k}:`)) ?? '')?.[2] ?? 0)
  return get('used_cpu_user') + get('used_cpu_sys')
}

/**
 * Publishes as fast as redis-benchmark (C, pipelined) can into CHANNELS channels, each subscribed
 * by 2 of INSTANCES subscriber connections (a direct conversation whose members sit on two
 * instances). The subscribers are redis-cli processes counted by `wc -l`, so the Node client's
 * speed is not what is measured. Reports publishes/s, deliveries, and Redis's CPU (100 = the
 * shard's one core busy).
 */
async function pubsub(mode: 'classic' | 'sharded'): Promise<void> {
  const INSTANCES = 4
  const CHANNELS = 2000
  const PUBLISHES = 400_000
  await withRedis(async (url, port) => {
    const admin = new Redis(url)
    const name = (i: number) => `scale:conv:${String(i).padStart(12, '0')}`
    const subscribe = mode === 'sharded' ? 'ssubscribe' : 'subscribe'
    const counts = Array.from({ length: INSTANCES }, (_, i) => {
      const mine = Array.from({ length: CHANNELS }, (_, c) => c)
        .filter((c) => c % INSTANCES === i || (c + 1) % INSTANCES === i)
        .map(name)
      const child = spawn('sh', ['-c', `redis-cli -p ${port} ${subscribe} ${mine.join(' ')} | wc -l`])
      let out = ''
      child.stdout.on('data', (d) => {
        out += d
      })
      return { channels: mine.length, lines: once(child, 'exit').then(() => Number(out.trim())) }
    })
    const field = mode === 'sharded' ? 'ssub' : 'sub'
    const subscribed = async () => {
      const list = String(await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub'))
      const n = [...list.matchAll(new RegExp(` ${field}=(\\d+)`, 'g'))].map((m) => Number(m[1]))
      return n.length === INSTANCES && n.every((x) => x === (CHANNELS * 2) / INSTANCES)
    }
    while (!(await subscribed())) await new Promise((r) => setTimeout(r, 50))
    const cpu0 = await redisCpuSeconds(admin)
    const started = process.hrtime.bigint()
    const command = mode === 'sharded' ? 'SPUBLISH' : 'PUBLISH'
    const args = ['-p', String(port), '-c', '50', '-P', '16', '-n', String(PUBLISHES), '-r', String(CHANNELS)]
    const out = spawnSync('redis-benchmark', [...args, '-q', command, 'scale:conv:__rand_int__', PAYLOAD], {
      encoding: 'utf8',
      maxBuffer: 1 << 24,
    })
    // Until every subscriber's output buffer is drained, deliveries are still in flight.
    const drained = async () =>
      [...String(await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub')).matchAll(/ omem=(\d+)/g)].every(
        (m) => m[1] === '0',
      )
    while (!(await drained())) await new Promise((r) => setTimeout(r, 50))
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    const cpu = (await redisCpuSeconds(admin)) - cpu0
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
    // redis-cli prints 3 lines per subscription confirmation and per message.
    let delivered = 0
    for (const c of counts) delivered += ((await c.lines) - 3 * c.channels) / 3
    const rps = /([\d.]+) requests per second/.exec(out.stdout)?.[1]
    log(`pubsub ${mode}`, {
      command: `${command} (redis-benchmark ${args.slice(2).join(' ')}), ${PAYLOAD.length}-byte payload`,
      subscribers: INSTANCES,
      channels: CHANNELS,
      publishes_per_sec: Number(rps),
      deliveries: delivered,
      deliveries_expected: PUBLISHES * 2,
      redis_cpu_percent: Math.round((cpu / seconds) * 100),
      seconds: +seconds.toFixed(2),
    })
    admin.disconnect()
  })
}

/** SUBSCRIBE (and SSUBSCRIBE) of 100,000 channels from one connection: what an instance's subscriptions cost Redis. */
async function subscriptions(): Promise<void> {
  const N = 100_000
  for (const mode of ['classic', 'sharded'] as const) {
    await withRedis(async (url) => {
      const admin = new Redis(url)
      const sub = new Redis(url)
      const mem = async () => Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1])
      const before = await mem()
      const started = performance.now()
      for (let k = 0; k < N; k += 1000) {
        const batch = Array.from({ length: 1000 }, (_, i) => `scale:conv:${newId()}:${k + i}`)
        if (mode === 'sharded') await Promise.all(batch.map((ch) => sub.ssubscribe(ch)))
        else await sub.subscribe(...batch)
      }
      const ms = performance.now() - started
      const after = await mem()
      log(`subscriptions ${mode}`, {
        channels: N,
        redis_bytes_per_subscription: Math.round((after - before) / N),
        subscribe_per_sec: Math.round(N / (ms / 1000)),
      })
      sub.disconnect()
      admin.disconnect()
    })
  }
}

/**
 * The message insert path's SQL (store/message-batch.ts, what the group-commit writer runs) on
 * PostgreSQL, without the app around it: CONCURRENCY writers each committing batches of BATCH
 * messages spread over the conversations, for SECONDS.
 */
async function inserts(): Promise<void> {
  const CONVERSATIONS = 1000
  const SECONDS = 10
  const { url, drop } = await createTestDatabase()
  const database = await openDatabase({ databaseUrl: url, poolSize: 8 })
  try {
    await database.migrate()
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    const user = newId()
    await sql`insert into users (id, email, password_hash, full_name) values (${user}, ${`${user}@x.test`}, 'x', 'Bench')`
    const convs = Array.from({ length: CONVERSATIONS }, () => newId())
    for (const c of convs) {
      await sql`insert into conversations (id, kind, title) values (${c}, 'group', 'bench')`
      await sql`insert into conversation_members (conversation_id, user_id, role) values (${c}, ${user}, 'owner')`
    }
    await sql.end()
    for (const [batch, concurrency] of [
      [1, 4],
      [50, 4],
      [500, 2],
    ] as const) {
      let rows = 0
      let commits = 0
      const deadline = Date.now() + SECONDS * 1000
      const writer = async (w: number) => {
        for (let n = 0; Date.now() < deadline; n++) {
          // Each writer owns a slice of the conversations, as instances' group commits mostly do.
          const reqs: SendRequest[] = Array.from({ length: batch }, (_, i) => ({
            senderId: user,
            conversationId: convs[(w * 250 + ((n * batch + i) % 250)) % CONVERSATIONS] as string,
            content: 'a message of about forty characters.....',
            clientMsgId: null,
          }))
          await database.db.transaction((tx) => storeBatch(tx, reqs))
          rows += batch
          commits++
        }
      }
      const started = performance.now()
      await Promise.all(Array.from({ length: concurrency }, (_, w) => writer(w)))
      const seconds = (performance.now() - started) / 1000
      log('inserts', {
        batch,
        concurrency,
        rows_per_sec: Math.round(rows / seconds),
        commits_per_sec: Math.round(commits / seconds),
      })
    }
  } finally {
    await database.close()
    await drop()
  }
}

/** Migration 0005 (re-keying messages) on a table of ROWS messages written under the 0004 schema. */
async function migration(): Promise<void> {
  const ROWS = 1_000_000
  const { url, drop } = await createTestDatabase()
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  try {
    await migrateUpTo(url, '0004_member_joined_seq')
    const user = newId()
    await sql`insert into users (id, email, password_hash, full_name) values (${user}, ${`${user}@x.test`}, 'x', 'Bench')`
    await sql`insert into conversations (id, kind, title)
              select gen_random_uuid(), 'group', 'bench' from generate_series(1, 1000)`
    await sql`insert into messages (id, conversation_id, seq, sender_id, content)
              select gen_random_uuid(), c.id, s, ${user}, 'a message of about forty characters.....'
              from (select id from conversations) c, generate_series(1, ${ROWS / 1000}::int) s`
    await sql`vacuum analyze messages`
    const database = await openDatabase({ databaseUrl: url, poolSize: 2 })
    const started = performance.now()
    await database.migrate()
    const ms = performance.now() - started
    await database.close()
    log('migration 0005', { rows: ROWS, seconds: +(ms / 1000).toFixed(2) })
  } finally {
    await sql.end()
    await drop()
  }
}

/**
 * What the fence costs and how often it falls back: READERS loops reading a history page through
 * the read router while WRITERS loops commit batches of 50 messages (the group commit's shape), on
 * a private primary and a hot standby of it (`pg_basebackup -R`), both on this machine. Run once
 * with the replica and once without, for the latency of the same read on the primary alone.
 */
async function replica(): Promise<void> {
  const SECONDS = 10
  const READERS = 4
  const primary = await PrivatePostgres.create(await freePort())
  await primary.startAsync()
  const standby = await primary.replicaAsync(await freePort())
  await standby.startAsync()
  const database = await openDatabase({ databaseUrl: primary.url, poolSize: 8 })
  try {
    await database.migrate()
    const user = newId()
    const conv = newId()
    const sql = postgres(primary.url, { max: 1, onnotice: () => {} })
    await sql`insert into users (id, email, password_hash, full_name) values (${user}, ${`${user}@x.test`}, 'x', 'Bench')`
    await sql`insert into conversations (id, kind, title) values (${conv}, 'group', 'bench')`
    await sql`insert into conversation_members (conversation_id, user_id, role) values (${conv}, ${user}, 'owner')`
    await sql.end()
    const quiet = { warn: () => {}, info: () => {} }
    for (const target of ['primary', 'replica'] as const) {
      const reads =
        target === 'replica'
          ? new ReplicaReads(database.db, {
              url: standby.url,
              poolSize: 8,
              maxLagMs: 2000,
              waitMs: 50,
              checkEveryMs: 500,
              log: quiet,
            })
          : primaryReads(database.db)
      const deadline = Date.now() + SECONDS * 1000
      let written = 0
      const writer = async () => {
        while (Date.now() < deadline) {
          const reqs: SendRequest[] = Array.from({ length: 50 }, () => ({
            senderId: user,
            conversationId: conv,
            content: 'a message of about forty characters.....',
            clientMsgId: null,
          }))
          await database.db.transaction((tx) => storeBatch(tx, reqs))
          written += 50
        }
      }
      const latencies: number[] = []
      const reader = async () => {
        while (Date.now() < deadline) {
          const started = performance.now()
          await reads.fresh('history', (db) =>
            messagePage(db, conv, user, { kind: 'before', seq: undefined }, 51),
          )
          latencies.push(performance.now() - started)
        }
      }
      await Promise.all([writer(), ...Array.from({ length: READERS }, reader)])
      latencies.sort((a, b) => a - b)
      const at = (q: number) => +(latencies[Math.floor(q * (latencies.length - 1))] ?? 0).toFixed(2)
      const stats = reads.stats()
      log(`history reads with ${target === 'replica' ? 'a replica' : 'the primary alone'}`, {
        readers: READERS,
        writes_per_sec: Math.round(written / SECONDS),
        reads_per_sec: Math.round(latencies.length / SECONDS),
        read_ms_p50: at(0.5),
        read_ms_p99: at(0.99),
        reads: Object.fromEntries(stats.reads),
        fallbacks: Object.fromEntries(stats.fallbacks),
      })
      await reads.close()
    }
  } finally {
    await database.close()
    standby.remove()
    primary.remove()
  }
}

const what = process.argv[2]
const runs: Record<string, () => Promise<void>> = {
  pubsub: () => pubsub(process.argv[3] === 'sharded' ? 'sharded' : 'classic'),
  subscriptions,
  inserts,
  migration,
  replica,
}
const run = what ? runs[what] : undefined
if (!run) {
  console.error(`usage: npx tsx bench/scaling.ts ${Object.keys(runs).join('|')}`)
  process.exit(2)
}
await run()
