import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import postgres from 'postgres'
import { afterAll, describe, expect, it } from 'vitest'
import { redisUrl, TEST_SECRET, uniquePrefix } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/pg.js'
import { startServer } from '../helpers/server-process.js'
import { eventually, type Frame, range, TestSocket, userSocketUrl } from '../helpers/ws-client.js'

/**
 * WORKERS=2 as production starts it: one `src/server.ts` process forking two workers on one port.
 * Which worker holds a socket is read from Redis: each instance counts its sockets per user in
 * the hash `<prefix>:presence:<user id>` under its own instance id (broker/redis-stores.ts).
 */

type Server = Awaited<ReturnType<typeof startServer>>
type User = { id: string; token: string; name: string }

const MIGRATIONS = (
  JSON.parse(readFileSync(new URL('../../drizzle/meta/_journal.json', import.meta.url), 'utf8')) as {
    entries: unknown[]
  }
).entries.length

/** The JSON lines the processes logged (the workers share the primary's stdout; `pid` is the writer's). */
function logLines(server: Server): Record<string, unknown>[] {
  return server
    .output()
    .split('\n')
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as Record<string, unknown>]
      } catch {
        return []
      }
    })
}

const lines = (server: Server, msg: string) => logLines(server).filter((l) => l.msg === msg)
const listeningPids = (server: Server) => lines(server, 'worker listening').map((l) => l.workerPid as number)
const servingLines = (server: Server) =>
  logLines(server).filter((l) => /^2 workers serving on /.test(String(l.msg)))

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function api<T>(base: string, path: string, body: object, token?: string): Promise<T> {
  const res = await fetch(`${base}/api/v1${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  })
  if (res.status >= 300) throw new Error(`${path}: ${res.status} ${await res.text()}`)
  return (await res.json()) as T
}

async function register(base: string, name: string): Promise<User> {
  const body = await api<{ user: { id: string }; access_token: string }>(base, '/auth/register', {
    email: `${name}.${Date.now()}.${Math.random().toString(36).slice(2)}@example.com`,
    password: 'Sup3r-secret!',
    full_name: name,
  })
  return { id: body.user.id, token: body.access_token, name }
}

describe('WORKERS=2', () => {
  let server: Server | undefined
  let drop: (() => Promise<void>) | undefined
  const redis = new Redis(redisUrl(), { lazyConnect: true, maxRetriesPerRequest: 1 })
  const prefix = uniquePrefix('workers')
  const sockets: TestSocket[] = []

  afterAll(async () => {
    for (const s of sockets) s.close()
    if (server && server.child.exitCode === null && server.child.signalCode === null) {
      for (const pid of listeningPids(server)) if (alive(pid)) process.kill(pid, 'SIGKILL')
      server.child.kill('SIGKILL')
      await once(server.child, 'exit')
    }
    const keys = redis.status === 'ready' ? await redis.keys(`${prefix}:*`) : []
    if (keys.length > 0) await redis.del(...keys)
    redis.disconnect()
    await drop?.()
  })

  /** Instance id → how many sockets of each of `users` it counts (`exclude`: instances to leave out). */
  async function placement(users: User[], exclude: Set<string> = new Set()) {
    const where = new Map<string, Map<User, number>>()
    for (const u of users) {
      const counts = await redis.hgetall(`${prefix}:presence:${u.id}`)
      for (const [instance, n] of Object.entries(counts)) {
        if (Number(n) <= 0 || exclude.has(instance)) continue
        where.set(instance, (where.get(instance) ?? new Map()).set(u, Number(n)))
      }
    }
    return where
  }

  const socketCount = (where: Map<string, Map<User, number>>) =>
    [...where.values()].flatMap((m) => [...m.values()]).reduce((a, b) => a + b, 0)
  const describePlacement = (where: Map<string, Map<User, number>>) =>
    JSON.stringify([...where].map(([id, m]) => [id, [...m].map(([u, n]) => `${u.name}×${n}`)]))

  async function open(user: User): Promise<TestSocket> {
    const s = await TestSocket.open(userSocketUrl(server?.url ?? ''), { token: user.token })
    sockets.push(s)
    await s.waitFor((f) => f.type === 'ready')
    return s
  }

  /** Every user sends `perUser` messages at once; resolves when each sender has its acks. */
  async function exchange(senders: Map<User, TestSocket>, group: string, round: string, perUser: number) {
    for (let k = 0; k < perUser; k++) {
      for (const [u, s] of senders)
        s.send({
          type: 'message.send',
          conversation_id: group,
          content: `${round}:${u.name}:${k}`,
          client_msg_id: `${round}-${u.name}-${k}`,
        })
    }
    const mine = (f: Frame) => String(f.client_msg_id).startsWith(`${round}-`)
    for (const s of senders.values()) await s.collect('message.ack', perUser, 30_000, mine)
  }

  /** `s` got the messages with seqs from..to exactly once, in seq order, each sender's in send order. */
  async function expectDelivered(s: TestSocket, group: string, from: number, to: number) {
    const inRange = (f: Frame) => ((f.message as { seq: number }).seq ?? 0) >= from
    await s.collect('message.new', to - from + 1, 30_000, (f) => f.conversation_id === group && inRange(f))
    await s.settle()
    const got = s
      .ofType('message.new')
      .filter((f) => f.conversation_id === group && inRange(f))
      .map((f) => f.message as { seq: number; content: string })
    expect(got.map((m) => m.seq)).toEqual(range(from, to))
    // Content is round:sender:k, so each sender's sends of each round must come as 0, 1, 2, …
    const bySender = new Map<string, number[]>()
    for (const m of got) {
      const sender = m.content.slice(0, m.content.lastIndexOf(':'))
      const k = Number(m.content.slice(m.content.lastIndexOf(':') + 1))
      bySender.set(sender, [...(bySender.get(sender) ?? []), k])
    }
    for (const ks of bySender.values()) expect(ks).toEqual(range(0, ks.length - 1))
  }

  it('refuses to start without DATABASE_URL and REDIS_URL', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      cwd: join(import.meta.dirname, '..', '..'),
      env: { PATH: process.env.PATH, NODE_ENV: 'production', JWT_SECRET: TEST_SECRET, WORKERS: '2' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stderr = ''
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString()
    })
    const [code] = (await once(child, 'close')) as [number | null]
    expect(code).toBe(1)
    expect(stderr).toContain('WORKERS: 2 workers need DATABASE_URL and REDIS_URL')
  })

  it('serves from two instances on one port, restarts a killed worker, and stops on SIGTERM', async () => {
    const database = await createTestDatabase()
    drop = database.drop
    await redis.connect()
    // An empty database: the first worker migrates it before the second starts; each migration runs once.
    server = await startServer({
      WORKERS: '2',
      DATABASE_URL: database.url,
      REDIS_URL: redisUrl(),
      REDIS_PREFIX: prefix,
      RATE_LIMITS: 'off',
      SHUTDOWN_TIMEOUT_MS: '5000',
    })
    const s = server
    await eventually('both workers to listen', async () => servingLines(s).length === 1, 60_000)
    const [firstPid, secondPid] = listeningPids(s) as [number, number]
    expect(firstPid).not.toBe(secondPid)
    expect(firstPid).not.toBe(s.child.pid)
    const sql = postgres(database.url, { max: 1, onnotice: () => {} })
    try {
      const [row] =
        await sql`select count(*)::int as n, count(distinct hash)::int as distinct from drizzle.__drizzle_migrations`
      expect(row).toEqual({ n: MIGRATIONS, distinct: MIGRATIONS })
    } finally {
      await sql.end()
    }

    // Sockets opened one after another: the primary hands connections to the workers in turn.
    const users: User[] = []
    for (let i = 0; i < 6; i++) users.push(await register(s.url, `u${i}`))
    const [owner, ...rest] = users as [User, ...User[]]
    const group = (
      await api<{ id: string }>(
        s.url,
        '/chat/groups',
        { title: 'Workers', member_ids: rest.map((u) => u.id) },
        owner.token,
      )
    ).id
    const first = new Map<User, TestSocket>()
    for (const u of users) first.set(u, await open(u))
    let where = new Map<string, Map<User, number>>()
    await eventually('every socket to be counted by its instance', async () => {
      where = await placement(users)
      return socketCount(where) === users.length
    })
    expect(where.size, describePlacement(where)).toBe(2)
    const instances = new Set(where.keys())

    const perUser = 10
    const round1 = users.length * perUser
    await exchange(first, group, 'r1', perUser)
    for (const sock of first.values()) await expectDelivered(sock, group, 1, round1)

    // SIGKILL one worker: its sockets drop, the other worker's stay, the primary starts another.
    process.kill(firstPid, 'SIGKILL')
    await eventually(
      'the primary to restart the killed worker',
      async () => listeningPids(s).length === 3,
      30_000,
    )
    const restartedPid = listeningPids(s)[2] as number
    expect([firstPid, secondPid]).not.toContain(restartedPid)
    expect(alive(firstPid)).toBe(false)
    expect(lines(s, 'worker died; restarting it')).toMatchObject([{ workerPid: firstPid, signal: 'SIGKILL' }])
    await eventually('a socket of the killed worker to close', async () =>
      [...first.values()].some((sock) => sock.closed !== undefined),
    )
    const firstDropped = users.find((u) => first.get(u)?.closed !== undefined) as User
    const deadInstance = [...where].find(([, m]) => m.has(firstDropped))?.[0] as string
    const dropped = [...(where.get(deadInstance)?.keys() ?? [])]
    for (const u of dropped) await first.get(u)?.waitClose()
    // Exactly that instance's sockets went: the survivor's still answer.
    const kept = users.filter((u) => !dropped.includes(u))
    for (const u of kept) {
      await first.get(u)?.settle()
      expect(first.get(u)?.closed).toBeUndefined()
    }

    // Everyone opens a further socket: the survivor and the restarted worker share them.
    await eventually('both workers to listen again', async () => servingLines(s).length === 2, 30_000)
    const second = new Map<User, TestSocket>()
    for (const u of users) second.set(u, await open(u))
    const survivor = [...instances].find((id) => id !== deadInstance) as string
    let now = new Map<string, Map<User, number>>()
    await eventually('the new sockets to be counted', async () => {
      now = await placement(users, new Set([deadInstance]))
      return socketCount(now) === kept.length + users.length
    })
    const fresh = [...now.keys()].filter((id) => !instances.has(id))
    expect(fresh, describePlacement(now)).toHaveLength(1)
    expect(now.has(survivor)).toBe(true)

    await exchange(second, group, 'r2', perUser)
    const round2 = round1 * 2
    for (const sock of second.values()) await expectDelivered(sock, group, round1 + 1, round2)
    for (const u of kept) await expectDelivered(first.get(u) as TestSocket, group, 1, round2)

    // SIGTERM: the workers shut down gracefully (1001 to their sockets), then the primary exits 0.
    const workerPids = [secondPid, restartedPid]
    s.child.kill('SIGTERM')
    const [code] = (await once(s.child, 'exit')) as [number | null]
    expect(code, s.output()).toBe(0)
    expect(lines(s, 'workers stopped')).toHaveLength(1)
    for (const pid of workerPids) expect(alive(pid)).toBe(false)
    for (const sock of second.values()) expect((await sock.waitClose()).code).toBe(1001)
  }, 240_000)
})
