import { setTimeout as sleep } from 'node:timers/promises'
import { sql } from 'drizzle-orm'
import { drizzle } from 'drizzle-orm/postgres-js'
import postgres from 'postgres'
import { isDatabaseUnavailable } from '../errors.js'
import { type Db, rowsOf } from './db.js'

/** What a routed read is, for the metrics (`chat_db_reads_total{read}`). */
export type ReadKind = 'history' | 'resume' | 'conversations' | 'users'

/** A configured replica's state: in use, or bypassed and why. */
export type ReplicaState = 'up' | 'down' | 'lagging' | 'not_replica'

/**
 * Why a read went to the primary although a replica is configured: the replica is bypassed
 * (its state), it did not replay the primary's position within the wait, or the read failed there.
 */
export type FallbackReason = Exclude<ReplicaState, 'up'> | 'wait' | 'error'

/**
 * Where the reads that may be served by a replica go. The services pick which reads pass through
 * here (history pages, resume, conversation lists, user search); every other read and every
 * write uses the primary directly.
 */
export interface Reads {
  /**
   * Runs `read` on a database that holds every commit made before this call: the replica once
   * it has replayed the primary's WAL up to where it stands now, otherwise the primary. So a page
   * read here never misses a message the client may already have seen.
   */
  fresh<T>(kind: ReadKind, read: (db: Db) => Promise<T>): Promise<T>
  /** Counters and the replica's state, for /metrics. */
  stats(): ReadStats
  close(): Promise<void>
}

export interface ReadStats {
  replica: 'none' | ReplicaState
  /** Seconds the replica is behind (time since the oldest primary position it has not replayed). */
  lagSeconds: number
  lagBytes: number
  reads: Map<string, number>
  fallbacks: Map<FallbackReason, number>
}

/** Pause between two asks of the replica's position while a read waits for it. */
const POLL_MS = 2
/** Primary positions kept to measure the lag; past this the newer ones are thinned out. */
const MAX_PENDING = 1000

/** A replica that has not answered a position query within this is taken for down. */
const ANSWER_MS = 2000

/** `promise`, or a rejection once `ms` have passed without it settling (a hung server). */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the read replica did not answer within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

const count = <K>(map: Map<K, number>, key: K) => map.set(key, (map.get(key) ?? 0) + 1)

/** No replica: every read on the primary. */
export function primaryReads(primary: Db): Reads {
  const reads = new Map<string, number>()
  return {
    fresh: (kind, read) => {
      count(reads, `primary/${kind}`)
      return read(primary)
    },
    stats: () => ({ replica: 'none', lagSeconds: 0, lagBytes: 0, reads, fallbacks: new Map() }),
    close: async () => {},
  }
}

export interface ReplicaOptions {
  url: string
  poolSize: number
  /** A replica further behind than this is bypassed until it catches up. */
  maxLagMs: number
  /** How long one read waits for the replica to replay the primary's position before using the primary. */
  waitMs: number
  /** How often the replica's state and lag are measured. */
  checkEveryMs: number
  log: { warn(fields: object, msg: string): void; info(fields: object, msg: string): void }
}

/** `X/Y` (a pg_lsn as text) as a number of bytes. */
export function parseLsn(text: string): bigint {
  const [hi, lo] = text.split('/')
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`)
}

/**
 * A streaming replica in front of the primary. Freshness is decided by WAL position, not by
 * guessing: a read first takes the primary's flushed WAL position (`pg_current_wal_flush_lsn()`,
 * which covers every acknowledged commit; the replica is sent WAL only up to it) and runs on the
 * replica only once `pg_last_wal_replay_lsn()` there, asked on the connection the read then
 * uses, has reached it. A background check measures
 * the lag and marks the replica down or lagging, and then it is bypassed without being asked.
 */
export class ReplicaReads implements Reads {
  private readonly client: postgres.Sql
  private state: ReplicaState = 'up'
  /** Primary positions seen and when, oldest first, until the replica has replayed them: the lag. */
  private pending: { at: number; lsn: bigint }[] = []
  private lagBytes = 0
  private readonly reads = new Map<string, number>()
  private readonly fallbacks = new Map<FallbackReason, number>()
  private readonly timer: NodeJS.Timeout
  private checking: Promise<void> | undefined

  constructor(
    private readonly primary: Db,
    private readonly opts: ReplicaOptions,
  ) {
    this.client = postgres(opts.url, {
      max: opts.poolSize,
      onnotice: () => {},
      connect_timeout: ANSWER_MS / 1000,
      // Tells the replica's pg_stat_activity (and its operators) which pool a connection is.
      connection: { application_name: 'chat-api-read' },
    })
    this.timer = setInterval(() => void this.check(), opts.checkEveryMs)
    this.timer.unref()
    // At once too, so a replica that is unreachable or not a standby is in the startup log.
    void this.check()
  }

  /** Measures the replica once (also run every `checkEveryMs`); resolves when done. */
  check(): Promise<void> {
    this.checking ??= this.measure().finally(() => {
      this.checking = undefined
    })
    return this.checking
  }

  async fresh<T>(kind: ReadKind, read: (db: Db) => Promise<T>): Promise<T> {
    if (this.state !== 'up') return this.onPrimary(kind, this.state, read)
    const target = await this.primaryPosition()
    // The position is checked on the connection the read then uses: a replica that restarts in
    // between (and may come back at an earlier position) breaks that connection instead of
    // answering from behind the position it reported.
    const conn = await this.reserve()
    if (!conn) return this.onPrimary(kind, 'down', read)
    try {
      if (!(await this.reached(conn, target)))
        return this.onPrimary(kind, this.state === 'up' ? 'wait' : this.state, read)
      try {
        const result = await read(this.onConnection(conn))
        count(this.reads, `replica/${kind}`)
        return result
      } catch (err) {
        // A standby may cancel a query that conflicts with replay; any failure is retried where
        // it can succeed, and a lost connection takes the replica out until a check finds it back.
        if (isDatabaseUnavailable(err)) this.markDown(err)
        return this.onPrimary(kind, 'error', read)
      }
    } finally {
      conn.release()
    }
  }

  stats(): ReadStats {
    const oldest = this.pending[0]
    return {
      replica: this.state,
      lagSeconds: oldest ? (Date.now() - oldest.at) / 1000 : 0,
      lagBytes: this.lagBytes,
      reads: this.reads,
      fallbacks: this.fallbacks,
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer)
    await this.checking
    await this.client.end({ timeout: 5 })
  }

  private onPrimary<T>(kind: ReadKind, reason: FallbackReason, read: (db: Db) => Promise<T>): Promise<T> {
    count(this.fallbacks, reason)
    count(this.reads, `primary/${kind}`)
    return read(this.primary)
  }

  private async primaryPosition(): Promise<bigint> {
    const [row] = rowsOf(await this.primary.execute(sql`select pg_current_wal_flush_lsn()::text as lsn`))
    return parseLsn(String(row?.lsn))
  }

  /**
   * Drizzle over one reserved connection. Drizzle reads (and sets, the same way each time) the
   * client's type parsers from `options`, which a reserved connection does not carry: it is
   * handed the pool's, which its queries use anyway. Built without the schema (210 µs a read with
   * it, 10 without, measured): reads use the query builder, never the relational `db.query` API.
   */
  private onConnection(conn: postgres.ReservedSql): Db {
    return drizzle(Object.assign(conn, { options: this.client.options })) as unknown as Db
  }

  /** A connection of the replica's pool for one read; undefined (and marked down) when none comes. */
  private async reserve(): Promise<postgres.ReservedSql | undefined> {
    const reserving = this.client.reserve()
    try {
      return await within(reserving, ANSWER_MS)
    } catch (err) {
      // Given back if it comes after all, so the pool does not shrink by one.
      reserving.then(
        (c) => c.release(),
        () => {},
      )
      this.markDown(err)
      return undefined
    }
  }

  /** Waits (at most `waitMs`) until the replica has replayed `target`; false if it has not. */
  private async reached(conn: postgres.ReservedSql, target: bigint): Promise<boolean> {
    const deadline = Date.now() + this.opts.waitMs
    for (;;) {
      try {
        if ((await this.replayPosition(conn)) >= target) return true
      } catch (err) {
        this.markDown(err)
        return false
      }
      if (Date.now() >= deadline || this.state !== 'up') return false
      // Streaming on a LAN replays a commit within a millisecond or so: ask again shortly.
      await sleep(Math.max(0, Math.min(POLL_MS, deadline - Date.now())))
    }
  }

  /** The replica's replay position, asked on `conn`. */
  private async replayPosition(conn: postgres.Sql): Promise<bigint> {
    const [row] = await within(conn`select pg_last_wal_replay_lsn()::text as lsn`, ANSWER_MS)
    if (!row?.lsn) throw new Error('not a standby: pg_last_wal_replay_lsn() is null')
    return parseLsn(String(row.lsn))
  }

  private async measure(): Promise<void> {
    let primaryAt: bigint
    let replayed: bigint
    try {
      primaryAt = await this.primaryPosition()
    } catch {
      return // the primary's own outage is reported by /ready; nothing to learn about the replica
    }
    const now = Date.now()
    if (this.pending.at(-1)?.lsn !== primaryAt) this.pending.push({ at: now, lsn: primaryAt })
    // The oldest entry sets the lag; dropping the second keeps memory flat during a long outage.
    if (this.pending.length > MAX_PENDING) this.pending.splice(1, 1)
    try {
      const [row] = await within(this.client`select pg_is_in_recovery() as standby`, ANSWER_MS)
      if (!row?.standby) return this.setState('not_replica', {})
      replayed = await this.replayPosition(this.client)
    } catch (err) {
      return this.markDown(err)
    }
    this.pending = this.pending.filter((p) => p.lsn > replayed)
    this.lagBytes = Math.max(0, Number(primaryAt - replayed))
    const lagMs = this.pending[0] ? now - this.pending[0].at : 0
    this.setState(lagMs > this.opts.maxLagMs ? 'lagging' : 'up', { lagMs })
  }

  private markDown(err: unknown): void {
    this.setState('down', { err: err instanceof Error ? err.message : String(err) })
  }

  private setState(next: ReplicaState, fields: object): void {
    if (next === this.state) return
    const was = this.state
    this.state = next
    if (next === 'up') this.opts.log.info({ was, ...fields }, 'read replica back in use')
    else
      this.opts.log.warn(
        { state: next, ...fields },
        `read replica bypassed (${next}): reads go to the primary`,
      )
  }
}
