import postgres from 'postgres'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDatabase } from '../../src/store/db.js'
import { registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'
import { PrivatePostgres } from '../helpers/private-postgres.js'
import {
  conversationSocketUrl,
  directChat,
  eventually,
  freePort,
  history,
  range,
  restSend,
  TestSocket,
  userSocketUrl,
} from '../helpers/ws-client.js'

/**
 * DATABASE_READ_URL on a real streaming replica: a private primary and a hot standby made from it
 * with `pg_basebackup -R`. Which database served a read is told by the app's own counter
 * (`chat_db_reads_total{target}`) and by the replica's pg_stat_activity (application_name).
 */
describe('a read replica (DATABASE_READ_URL)', { timeout: 60_000 }, () => {
  let primary: PrivatePostgres
  let replica: PrivatePostgres
  let admin: { primary: postgres.Sql; replica: postgres.Sql }
  let t: TestApp
  const sockets: TestSocket[] = []

  /** Polls until the replica is a standby that has replayed everything the primary has flushed. */
  const replicaCaughtUp = () =>
    eventually(
      'the replica to replay the primary',
      async () => {
        const [p] = await admin.primary`select pg_current_wal_flush_lsn() as lsn`
        const [r] = await admin.replica`
          select pg_is_in_recovery() as standby, pg_last_wal_replay_lsn() >= ${p?.lsn}::pg_lsn as done`
        return r?.standby === true && r.done === true
      },
      20_000,
    )

  beforeAll(async () => {
    primary = await PrivatePostgres.create(await freePort())
    await primary.startAsync()
    replica = await primary.replicaAsync(await freePort())
    await replica.startAsync()
    admin = {
      primary: postgres(primary.url, { max: 1, onnotice: () => {} }),
      replica: postgres(replica.url, { max: 1, onnotice: () => {} }),
    }
    const database = await openDatabase({ databaseUrl: primary.url, poolSize: 4 })
    await database.migrate()
    await replicaCaughtUp()
    t = await startTestApp({
      database,
      env: {
        DATABASE_URL: primary.url,
        DATABASE_READ_URL: replica.url,
        // Generous on a shared 2-core machine: a replica that streams is never this far behind.
        DATABASE_READ_WAIT_MS: '1000',
        DATABASE_READ_MAX_LAG_MS: '1500',
      },
    })
    await t.listen()
  }, 120_000)

  afterAll(async () => {
    for (const s of sockets) s.close()
    await t?.close()
    await t?.database.close()
    await admin?.primary.end()
    await admin?.replica.end().catch(() => {})
    replica?.remove()
    primary?.remove()
  })

  const open = async (url: string, user: TestUser) => {
    const s = await TestSocket.open(url, { token: user.token })
    sockets.push(s)
    return s
  }

  /** A counter or gauge from /metrics, summed over the series whose labels include `labels`. */
  const metric = async (name: string, labels: Record<string, string> = {}) => {
    const text = (await t.app.inject({ url: '/metrics' })).body
    const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
    return text
      .split('\n')
      .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
      .filter((l) => wanted.every((w) => l.includes(w)))
      .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0)
  }

  const get = async (user: TestUser, url: string) => {
    const res = await t.app.inject({ url: `/api/v1${url}`, headers: user.auth })
    expect(res.statusCode, `${url}: ${res.body}`).toBe(200)
    return res.json()
  }

  const seqsOf = (page: { items: { seq: number }[] }) => page.items.map((m) => m.seq)

  /** Every replica-eligible read a client makes, each checked to hold everything up to `last`. */
  const readEverything = async (a: TestUser, b: TestUser, conv: string, last: number) => {
    expect((await history(t.app, b, conv)).map((m) => m.seq)).toEqual(range(1, last))
    expect(seqsOf(await get(b, `/chat/conversations/${conv}/messages`))).toEqual(range(1, last))
    expect(seqsOf(await get(b, `/chat/conversations/${conv}/messages?after_seq=${last - 1}`))).toEqual([last])
    const list = await get(b, '/chat/conversations')
    expect(list.items.find((c: { id: string }) => c.id === conv)?.last_message?.seq).toBe(last)
    const found = await get(b, `/users?query=${encodeURIComponent(a.email)}`)
    expect(found.items.map((u: { id: string }) => u.id)).toEqual([a.id])
    // Socket resume: a user socket held until its `sync`, and a conversation socket after ?since_seq.
    const user = await open(`${userSocketUrl(t.url)}?resume=true`, b)
    user.send({ type: 'sync', cursors: { [conv]: 1 } })
    await user.collect('message.new', last - 1)
    expect(user.seqs(conv)).toEqual(range(2, last))
    const bound = await open(conversationSocketUrl(t.url, conv, '?since_seq=0'), b)
    await bound.collect('message.new', last)
    expect(bound.seqs(conv)).toEqual(range(1, last))
  }

  it('serves history, resume, conversation lists and user search from the replica; writes stay on the primary', async () => {
    const a = await registerUser(t.app, 'ReplA')
    const b = await registerUser(t.app, 'ReplB')
    const conv = await directChat(t.app, a, b)
    for (let i = 1; i <= 3; i++) await restSend(t.app, a, conv, `m${i}`)
    const before = await metric('chat_db_reads_total', { target: 'replica' })
    // Read at once after the writes: each read waits for the replica to replay them, never serves less.
    await readEverything(a, b, conv, 3)
    for (const read of ['history', 'resume', 'conversations', 'users']) {
      expect(await metric('chat_db_reads_total', { target: 'replica', read }), read).toBeGreaterThan(0)
    }
    expect(await metric('chat_db_reads_total', { target: 'replica' })).toBeGreaterThan(before)
    expect(await metric('chat_db_replica_in_use')).toBe(1)
    // The replica's own view: the app's read pool is connected to it under its application_name.
    const [row] = await admin.replica`
      select count(*)::int as n from pg_stat_activity where application_name = 'chat-api-read'`
    expect(row?.n).toBeGreaterThan(0)
    // The app's writes went to the primary: the replica would have refused them (read-only).
    const [primaryWrites] = await admin.primary`
      select count(*)::int as n from pg_stat_activity where application_name = 'chat-api-read'`
    expect(primaryWrites?.n).toBe(0)
  })

  it('with replay paused, clients still get every message in order: reads fall back to the primary', async () => {
    const a = await registerUser(t.app, 'LagA')
    const b = await registerUser(t.app, 'LagB')
    const conv = await directChat(t.app, a, b)
    for (let i = 1; i <= 3; i++) await restSend(t.app, a, conv, `before ${i}`)
    // B is connected throughout: live delivery does not depend on the replica at all.
    const live = await open(userSocketUrl(t.url), b)
    await replicaCaughtUp()
    await admin.replica`select pg_wal_replay_pause()`
    await eventually('replay to pause', async () => {
      const [r] = await admin.replica`select pg_get_wal_replay_pause_state() as state`
      return r?.state === 'paused'
    })
    try {
      const fallbacks = await metric('chat_db_replica_fallbacks_total')
      for (let i = 4; i <= 6; i++) await restSend(t.app, a, conv, `during ${i}`)
      const late = await registerUser(t.app, 'LagLate')
      await live.collect('message.new', 3)
      expect(live.seqs(conv)).toEqual([4, 5, 6])
      // The replica has none of 4..6 (nor the new user): each read must still hold them.
      const [onReplica] = await admin.replica`
        select count(*)::int as n from messages where conversation_id = ${conv}`
      expect(onReplica?.n).toBe(3)
      await readEverything(a, b, conv, 6)
      expect((await get(b, `/users?query=${encodeURIComponent(late.email)}`)).items).toHaveLength(1)
      expect(await metric('chat_db_replica_fallbacks_total')).toBeGreaterThan(fallbacks)
      // Behind for longer than DATABASE_READ_MAX_LAG_MS: bypassed without waiting, and the lag shows.
      await eventually('the replica to be bypassed as lagging', async () => {
        return (await metric('chat_db_replica_in_use')) === 0
      })
      expect(await metric('chat_db_replica_lag_seconds')).toBeGreaterThan(1)
      expect(await metric('chat_db_replica_lag_bytes')).toBeGreaterThan(0)
      const lagging = await metric('chat_db_replica_fallbacks_total', { reason: 'lagging' })
      await readEverything(a, b, conv, 6)
      expect(await metric('chat_db_replica_fallbacks_total', { reason: 'lagging' })).toBeGreaterThan(lagging)
    } finally {
      await admin.replica`select pg_wal_replay_resume()`
    }
    // Caught up again: back in use, serving reads.
    await eventually(
      'the replica to be back in use',
      async () => (await metric('chat_db_replica_in_use')) === 1,
    )
    expect(await metric('chat_db_replica_lag_seconds')).toBe(0)
    const served = await metric('chat_db_reads_total', { target: 'replica', read: 'history' })
    await restSend(t.app, a, conv, 'after')
    expect(seqsOf(await get(b, `/chat/conversations/${conv}/messages`))).toEqual(range(1, 7))
    expect(await metric('chat_db_reads_total', { target: 'replica', read: 'history' })).toBe(served + 1)
  })

  it('a replica that freezes (no answer, connections open) is taken for down: reads answer from the primary', async () => {
    const a = await registerUser(t.app, 'FrozenA')
    const b = await registerUser(t.app, 'FrozenB')
    const conv = await directChat(t.app, a, b)
    for (let i = 1; i <= 3; i++) await restSend(t.app, a, conv, `m${i}`)
    await readEverything(a, b, conv, 3)
    // Stop the app's backends on the replica and its postmaster (no new connection is answered):
    // what a frozen server or a network black hole looks like to the app.
    const backends = await admin.replica<{ pid: number }[]>`
      select pid from pg_stat_activity where application_name = 'chat-api-read'`
    const frozen = [replica.postmasterPid(), ...backends.map((r) => r.pid)]
    for (const pid of frozen) process.kill(pid, 'SIGSTOP')
    try {
      for (let i = 4; i <= 5; i++) await restSend(t.app, a, conv, `m${i}`)
      await readEverything(a, b, conv, 5)
      expect(await metric('chat_db_replica_in_use')).toBe(0)
    } finally {
      for (const pid of frozen) process.kill(pid, 'SIGCONT')
    }
    await eventually(
      'the replica to be back in use',
      async () => (await metric('chat_db_replica_in_use')) === 1,
    )
  })

  it('a replica that is down is bypassed: every read answers from the primary, no 5xx', async () => {
    const a = await registerUser(t.app, 'DownA')
    const b = await registerUser(t.app, 'DownB')
    const conv = await directChat(t.app, a, b)
    for (let i = 1; i <= 3; i++) await restSend(t.app, a, conv, `m${i}`)
    await admin.replica.end()
    await replica.stopAsync()
    try {
      for (let i = 4; i <= 5; i++) await restSend(t.app, a, conv, `m${i}`)
      await readEverything(a, b, conv, 5)
      await eventually(
        'the replica to be marked down',
        async () => (await metric('chat_db_replica_in_use')) === 0,
      )
      expect(
        (await metric('chat_db_replica_fallbacks_total', { reason: 'down' })) +
          (await metric('chat_db_replica_fallbacks_total', { reason: 'error' })),
      ).toBeGreaterThan(0)
      await readEverything(a, b, conv, 5)
    } finally {
      await replica.startAsync()
      admin.replica = postgres(replica.url, { max: 1, onnotice: () => {} })
    }
    await replicaCaughtUp()
    await eventually(
      'the replica to be back in use',
      async () => (await metric('chat_db_replica_in_use')) === 1,
    )
  })
})
