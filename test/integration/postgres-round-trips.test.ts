import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net'
import { sql } from 'drizzle-orm'
import postgres from 'postgres'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MessageWriter } from '../../src/services/message-writer.js'
import { Outbox } from '../../src/services/outbox.js'
import type { DeliveryChannel } from '../../src/services/outbox-channel.js'
import { type Database, openDatabase, rowsOf } from '../../src/store/db.js'
import { type SendRequest, storeBatch } from '../../src/store/message-batch.js'
import { openTestDatabase } from '../helpers/database.js'
import { createTestDatabase } from '../helpers/pg.js'
import { seedConversation } from '../helpers/writer.js'

/**
 * How many times the server's PostgreSQL client speaks while storing one batch of plain messages,
 * counted by a TCP relay between the two (real PostgreSQL, real sockets). Two is the least the
 * batch can take: BEGIN with the batch's reads (lock, membership, earlier client_msg_ids), then
 * the insert with the COMMIT, which depends on what the reads returned. Each extra send is a
 * round trip the batch waits for with its conversations locked (docs/performance.md, issue 17):
 * postgres.js waited for BEGIN's answer, wrote each statement over 1 KB on its own
 * (patches/postgres+3.4.9.patch), and the COMMIT waited for the insert's answer.
 */
describe('a batch of plain messages on PostgreSQL', () => {
  let direct: Database & { url?: string }
  let relayed: Database
  let relay: Server
  const sends: number[] = []
  const sockets = new Set<Socket>()

  beforeAll(async () => {
    direct = await openTestDatabase('postgres')
    const target = new URL(direct.url as string)
    const pgPort = Number(target.port)
    relay = createServer((client) => {
      sockets.add(client)
      const server = connect(pgPort, target.hostname)
      sockets.add(server)
      client.on('data', (chunk) => {
        sends.push(chunk.length)
        server.write(chunk)
      })
      server.pipe(client)
      client.on('close', () => server.destroy())
      server.on('close', () => client.destroy())
    })
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve))
    const { port } = relay.address() as AddressInfo
    target.host = `127.0.0.1:${port}`
    relayed = await openDatabase({ databaseUrl: target.toString(), poolSize: 1 })
  })
  afterAll(async () => {
    await relayed?.close()
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => relay?.close(resolve))
    await direct?.close()
  })

  /** One batch as the writer stores it on PostgreSQL (`MessageWriter.commitBatch`). */
  const storeOne = async (reqs: SendRequest[]) => {
    const stored = await relayed.db.transaction((tx) => storeBatch(tx, reqs, { pipelined: true }))
    await stored.inserted
    return stored.outcomes.map((o) => (o instanceof Error ? o : o.message.seq))
  }

  it('is stored in two sends of the client: BEGIN with the reads, the insert with the COMMIT', async () => {
    const convs = await Promise.all([1, 2, 3, 4].map(() => seedConversation(direct.db)))
    // client_msg_ids, so that the batch also reads the earlier ones; 4 conversations and long
    // texts, so that each statement's JSON parameter is over postgres.js's old 1 KB threshold.
    const batch = (n: number): SendRequest[] =>
      convs.map((c, j) => ({
        conversationId: c.id,
        senderId: c.members[0] as string,
        content: `plain ${n} ${j} ${'x'.repeat(300)}`,
        clientMsgId: `k-${n}-${j}-${'y'.repeat(100)}`,
      }))
    // Warm up: the pool's one connection opens and prepares the batch's statements (the first
    // use of each adds a round trip to describe it).
    await storeOne(batch(1))
    await storeOne(batch(2))
    const before = sends.length
    expect(await storeOne(batch(3))).toEqual([3, 3, 3, 3])
    expect(sends.length - before).toBe(2)
  })
  it('records message.created for a webhook in the same two sends: the events ride with the insert', async () => {
    const convs = await Promise.all([1, 2, 3].map(() => seedConversation(direct.db)))
    // A channel that takes every event and is never run (no worker here): only the insert counts.
    const channel: DeliveryChannel = {
      name: 'webhook',
      targets: async () => [],
      deliver: async () => ({ status: 'delivered' }) as never,
    }
    const writer = new MessageWriter(
      relayed.db,
      { maxBatch: 100, pipelined: true },
      () => {},
      new Outbox([channel]),
    )
    const send = (n: number) =>
      Promise.all(
        convs.map((c, j) =>
          writer.append({
            conversationId: c.id,
            senderId: c.members[0] as string,
            content: `w ${n} ${j}`,
            clientMsgId: null,
          }),
        ),
      )
    // Warm up as above; the first send starts a batch alone, the rest wait for it and go together.
    await send(1)
    await send(2)
    await send(3)
    const before = sends.length
    await writer.append({
      conversationId: convs[0]?.id as string,
      senderId: convs[0]?.members[0] as string,
      content: 'one',
      clientMsgId: null,
    })
    expect(sends.length - before).toBe(2)
    const events = await direct.db.execute(
      sql`select count(*)::int as n from outbox_events where type = 'message.created'`,
    )
    expect(rowsOf(events)[0]?.n).toBe(10)
  })
})

/**
 * postgres.js hands a new query to a busy connection (pipelining) until that connection has
 * `max_pipeline` queries waiting. A transaction's BEGIN arriving as the one that fills it was
 * written there without the transaction taking the connection: the transaction failed with a
 * TypeError (a 500 in `messages.test.ts`'s 1,000 concurrent sends on a loaded machine, once
 * writes were coalesced and pipelines grew longer) and the connection stayed inside BEGIN for
 * whoever came next. Upstream has the same defect (it throws from a query handler instead).
 */
describe('a transaction whose BEGIN fills a connection pipeline', () => {
  it('takes that connection, commits, and leaves it outside any transaction', async () => {
    const { url, drop } = await createTestDatabase()
    // max_pipeline: a postgres.js option its type declarations leave out (default 100).
    const options = { max: 1, max_pipeline: 5, onnotice: () => {} }
    const sql = postgres(url, options)
    try {
      await sql`select ${0}::int as i`
      // Started at once (not awaited), so that the connection has them all in its pipeline.
      const plain = [1, 2, 3, 4, 5].map((i) => sql`select ${i}::int as i`.execute())
      const tx = sql.begin(async (t) => (await t`select txid_current() as x`)[0]?.x)
      const rows = await Promise.all(plain)
      expect(rows.map((r) => r[0]?.i)).toEqual([1, 2, 3, 4, 5])
      expect(await tx).toBeDefined()
      // Outside a transaction block, PostgreSQL refuses a savepoint (25P01).
      await expect(sql`savepoint s`.execute()).rejects.toMatchObject({ code: '25P01' })
    } finally {
      await sql.end()
      await drop()
    }
  })
})
