import { randomBytes } from 'node:crypto'
import type postgres from 'postgres'
import { pool, Rest } from '../bench/rest.js'
import { type Account, ChaosClient, type Endpoint } from './client.js'
import { withTimeout } from './http.js'
import type { Ledger } from './ledger.js'
import type { Rng } from './prng.js'

export interface WorldSpec {
  users: number
  /** Messages per second offered by all users together. */
  rate: number
  /** Share of sends made over REST instead of the socket. */
  restShare: number
}

export interface Conversation {
  id: string
  label: string
  members: number[]
}

const PASSWORD = 'Chaos-passw0rd!'

/** Sleeps that `wake` ends at once, so stopping the world does not wait out a 30 s interval. */
class Sleeper {
  private readonly waiting = new Set<() => void>()

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.waiting.delete(done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.waiting.add(done)
    })
  }

  wake(): void {
    for (const done of [...this.waiting]) done()
  }
}

/**
 * The users and what they do: direct conversations in a ring (each user talks to both
 * neighbours, and neighbours live on different instances), one group of everyone owned by user
 * 0, steady sends, periodic sign-ins, and the owner removing a member and adding it back.
 */
export class World {
  private running = false
  private readonly loops: Promise<void>[] = []
  private stopSends = false
  private readonly sleeper = new Sleeper()
  /** The churn loop's own sleeps, so a fault can cut its wait short. */
  private readonly churnSleeper = new Sleeper()
  /** A member is out of the group right now (the end waits for the re-add). */
  removing = false
  private reloads = 0

  private constructor(
    readonly clients: ChaosClient[],
    readonly conversations: Conversation[],
    readonly group: Conversation,
    private readonly spec: WorldSpec,
    private readonly ledger: Ledger,
    private readonly rng: Rng,
    private readonly sql: postgres.Sql,
  ) {}

  /** Registers the users and creates the conversations over REST (no faults yet), then connects. */
  static async setup(
    spec: WorldSpec,
    endpoints: Endpoint[],
    ledger: Ledger,
    rng: Rng,
    sql: postgres.Sql,
  ): Promise<World> {
    const tag = randomBytes(3).toString('hex')
    const setupRest = new Rest(endpoints[0]?.ws.replace(/^ws/, 'http') as string)
    try {
      const users = await pool(
        Array.from({ length: spec.users }, (_, i) => i),
        4,
        async (i) => {
          const email = `chaos-${tag}-${i}@example.com`
          const r = await setupRest.call<{ user: { id: string }; access_token: string }>(
            'POST',
            '/api/v1/auth/register',
            { email, password: PASSWORD, full_name: `Chaos ${i}` },
          )
          return { account: { id: r.user.id, email, password: PASSWORD } as Account, token: r.access_token }
        },
      )
      const clients = users.map(
        (u, i) => new ChaosClient(i, u.account, u.token, endpoints, ledger, rng.fork(`client-${i}`)),
      )
      const conversations: Conversation[] = []
      const pairs = spec.users === 2 ? [[0, 1]] : clients.map((_, i) => [i, (i + 1) % spec.users])
      for (const [a, b] of pairs as [number, number][]) {
        const conv = await setupRest.call<{ id: string }>(
          'POST',
          '/api/v1/chat/conversations',
          { recipient_id: users[b]?.account.id },
          users[a]?.token,
        )
        conversations.push({ id: conv.id, label: `dm ${a}-${b}`, members: [a, b] })
      }
      const g = await setupRest.call<{ id: string }>(
        'POST',
        '/api/v1/chat/groups',
        { title: 'chaos', member_ids: users.slice(1).map((u) => u.account.id) },
        users[0]?.token,
      )
      const group = { id: g.id, label: 'group', members: clients.map((_, i) => i) }
      conversations.push(group)
      for (const c of conversations) for (const m of c.members) clients[m]?.join(c.id)
      await Promise.all(clients.map((c) => c.connect()))
      return new World(clients, conversations, group, spec, ledger, rng, sql)
    } finally {
      setupRest.close()
    }
  }

  /**
   * Two REST sends through instance `i` whose bodies take `ms` to arrive (see FaultInjector),
   * from the first two users (members of the group at any time, so never refused).
   */
  slowSends(i: number, ms: number): { started: Promise<void>; done: Promise<string> }[] {
    return this.clients.slice(0, 2).map((c) => c.slowSend(i, ms))
  }

  label(conv: string): string {
    return this.conversations.find((c) => c.id === conv)?.label ?? conv.slice(0, 8)
  }

  start(): void {
    this.running = true
    const perUser = this.spec.rate / this.clients.length
    for (const c of this.clients) {
      const r = this.rng.fork(`load-${c.idx}`)
      this.loops.push(
        this.every(
          () => (1000 / perUser) * r.float(0.5, 1.5),
          () => {
            if (!this.stopSends) c.sendNew(this.spec.restShare)
          },
        ),
        this.every(
          () => r.int(15_000, 30_000),
          () => c.login(),
        ),
      )
    }
    this.loops.push(
      this.every(
        () => 2000,
        () => this.clients.forEach((c) => void c.sweep()),
      ),
    )
    if (this.clients.length > 2) this.loops.push(this.churn())
  }

  /**
   * Redis just stopped: the next removal comes now (membership events meet the outage), and two
   * users reconnect, asking for a ticket first, as people reloading a page would.
   */
  redisDown(): void {
    this.churnSleeper.wake()
    for (const c of this.rng
      .fork(`reload-${this.reloads++}`)
      .shuffle(this.clients)
      .slice(0, 2))
      c.reconnect()
  }

  /** Stops new sends; the outboxes still drain. */
  quiesce(): void {
    this.stopSends = true
  }

  async stop(): Promise<void> {
    this.running = false
    this.stopSends = true
    this.sleeper.wake()
    this.churnSleeper.wake()
    await Promise.all(this.loops)
    for (const c of this.clients) c.stop()
  }

  private async every(interval: () => number, fn: () => unknown): Promise<void> {
    while (this.running) {
      await this.sleeper.sleep(interval())
      if (this.running) await fn()
    }
  }

  /** The group's last seq, read straight from PostgreSQL; undefined while it is down. */
  private async lastSeq(): Promise<number | undefined> {
    try {
      const [row] = await this.sql<
        { last_seq: string }[]
      >`select last_seq from conversations where id = ${this.group.id}`
      return row ? Number(row.last_seq) : undefined
    } catch {
      return undefined
    }
  }

  /**
   * The owner removes a random member, waits, and adds it back. Each removal becomes an episode
   * in the ledger before the request is made (the member's socket may hear of it before the
   * owner's answer arrives); see Episode for how its bounds are read.
   */
  private async churn(): Promise<void> {
    const r = this.rng.fork('churn')
    const owner = this.clients[0] as ChaosClient
    const groupPath = `/api/v1/chat/conversations/${this.group.id}/members`
    while (this.running) {
      await this.churnSleeper.sleep(r.int(4000, 8000))
      if (!this.running || this.stopSends) continue
      const member = 1 + r.int(0, this.clients.length - 2)
      // A busy group at the moment of the removal: messages committed just before it are still
      // on their way to the member's socket (through Redis from other instances) when the
      // removal's event is published. They are owed to the member all the same.
      for (const c of r.shuffle(this.clients.filter((c) => c.idx !== member)).slice(0, 4))
        c.sendNew(0, this.group.id)
      await this.sleeper.sleep(r.int(0, 30))
      const lo = await this.lastSeq()
      if (lo === undefined) continue
      this.removing = true
      const episode = {
        user: member,
        conv: this.group.id,
        lo,
        removedAtMs: this.ledger.now(),
        seenLive: false,
      }
      this.ledger.episodes.push(episode)
      const userId = this.clients[member]?.account.id as string
      const removed = await this.ownerCall(owner, 'DELETE', `${groupPath}/${userId}`, undefined, [204, 404])
      if (!removed) {
        this.ledger.episodes.splice(this.ledger.episodes.indexOf(episode), 1)
        this.removing = false
        continue
      }
      this.ledger.count('removals')
      await this.sleeper.sleep(r.int(1500, 4000))
      const added = await this.ownerCall(owner, 'POST', groupPath, { user_id: userId }, [200, 201])
      let hi: number | undefined
      while (added && hi === undefined && this.running) {
        hi = await this.lastSeq()
        if (hi === undefined) await this.sleeper.sleep(500)
      }
      // Set even when stopping: a bound read late is only looser (it must be at least the add's seq).
      Object.assign(episode, { hi: hi ?? Number.POSITIVE_INFINITY, addedAtMs: this.ledger.now() })
      if (added) this.ledger.count('re_adds')
      this.removing = false
    }
  }

  /** One membership change, retried through outages until it gets one of `done` (or the run ends). */
  private async ownerCall(
    owner: ChaosClient,
    method: string,
    path: string,
    body: unknown,
    done: number[],
  ): Promise<boolean> {
    for (let attempt = 0; this.running; attempt++) {
      const { rest, token, next } = owner.rest()
      try {
        const res = await withTimeout(rest.raw(method, path, body, token), 15_000)
        this.ledger.httpAnswer(`${method} member`, res.status, res.headers, res.text)
        if (done.includes(res.status)) return true
        if (res.status < 500) {
          this.ledger.violation(
            'membership_change_refused',
            `${method} ${path} → ${res.status} ${res.text.slice(0, 160)}`,
          )
          return false
        }
      } catch {
        this.ledger.count('rest_network_errors')
        next()
      }
      await this.sleeper.sleep(Math.min(500 * (attempt + 1), 2000))
    }
    return false
  }
}
