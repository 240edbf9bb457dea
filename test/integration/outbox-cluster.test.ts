import { once } from 'node:events'
import { describe, expect, it } from 'vitest'
import { registerUser, startTestApp, type TestApp } from '../helpers/app.js'
import { openTestDatabase } from '../helpers/database.js'
import { createTestDatabase } from '../helpers/pg.js'
import { startServer } from '../helpers/server-process.js'
import { type Received, startReceiver, TEST_WEBHOOK_SECRET, verify } from '../helpers/webhook-receiver.js'
import { groupChat, restSend } from '../helpers/ws-client.js'

const messageIdOf = (r: Received) =>
  (JSON.parse(r.body) as { data: { message?: { id: string } } }).data.message?.id ?? ''

const hookEnv = (url: string) => ({
  WEBHOOK_URL: url,
  WEBHOOK_SECRET: TEST_WEBHOOK_SECRET,
  WEBHOOK_ALLOW_PRIVATE: 'true',
  WEBHOOK_EVENTS: 'message.created',
})

/**
 * The outbox across processes: instances sharing one PostgreSQL deliver each event to a receiver
 * under one webhook-id and never again after a 2xx, and a process killed with SIGKILL after the
 * commit loses nothing: the next instance delivers what it had not.
 */
describe('outbox across instances (PostgreSQL)', () => {
  it('two instances deliver each event once per endpoint, under one id, never again after a 2xx', async () => {
    // The first attempt at every third event fails: retries run too, on either instance.
    const attempts = new Map<string, number>()
    const receiver = await startReceiver((r) => {
      const n = (attempts.get(r.id) ?? 0) + 1
      attempts.set(r.id, n)
      return n === 1 && Number.parseInt(r.id.slice(-2), 16) % 3 === 0 ? { status: 500 } : { status: 200 }
    })
    const database = await openTestDatabase('postgres')
    const env = {
      ...hookEnv(receiver.url),
      OUTBOX_POLL_MS: '20',
      OUTBOX_RETRY_BASE_MS: '20',
      OUTBOX_RETRY_MAX_DELAY_MS: '50',
    }
    const nodes: TestApp[] = []
    try {
      for (let i = 0; i < 2; i++) nodes.push(await startTestApp({ database, env }))
      const [a, b] = nodes as [TestApp, TestApp]
      const ann = await registerUser(a.app, 'Ann')
      const bob = await registerUser(b.app, 'Bob')
      const group = await groupChat(a.app, ann, [bob])
      const N = 120
      const sent = await Promise.all(
        Array.from({ length: N }, (_, i) =>
          i % 2 === 0
            ? restSend(a.app, ann, group, `from a ${i}`)
            : restSend(b.app, bob, group, `from b ${i}`),
        ),
      )
      const ids = new Set(sent.map((m) => m.id))
      const ok = (all: Received[]) =>
        new Set(all.filter((r) => r.answered === 200).map(messageIdOf)).size >= N
      await receiver.waitFor(ok, 60_000)
      // Let both workers go round once more: anything delivered twice would show now.
      for (const n of nodes) n.services.outboxWorker.nudge()
      await restSend(a.app, ann, group, 'the last one')
      await receiver.waitFor((all) => all.some((r) => r.body.includes('the last one') && r.answered === 200))

      const byMessage = new Map<string, Set<string>>()
      for (const r of receiver.received) {
        verify(TEST_WEBHOOK_SECRET, r)
        const m = messageIdOf(r)
        byMessage.set(m, (byMessage.get(m) ?? new Set()).add(r.id))
      }
      for (const id of ids) expect(byMessage.get(id)?.size, `message ${id}`).toBe(1)
      const byId = new Map<string, Received[]>()
      for (const r of receiver.received) byId.set(r.id, [...(byId.get(r.id) ?? []), r])
      for (const [id, rs] of byId) {
        const firstOk = rs.findIndex((r) => r.answered === 200)
        expect(firstOk, id).toBeGreaterThanOrEqual(0)
        expect(rs.length, `no request for ${id} after its 2xx`).toBe(firstOk + 1)
      }
      // The receiver answers before the worker records the outcome: wait for the records.
      const end = Date.now() + 20_000
      while ((await a.services.outboxWorker.backlog()).pending > 0 && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 25))
      }
      const delivered = nodes.map((n) => n.services.outboxWorker.count('webhook', 'delivered'))
      expect((delivered[0] ?? 0) + (delivered[1] ?? 0)).toBe(N + 1)
      expect(receiver.received.some((r) => r.answered === 500)).toBe(true)
    } finally {
      for (const n of nodes) await n.close()
      await database.close()
      await receiver.close()
    }
  }, 120_000)

  it('loses nothing when the process is killed with SIGKILL between commit and delivery', async () => {
    // Until the first process is dead, every request hangs: nothing it sends is ever answered.
    let answering = false
    const receiver = await startReceiver(() => (answering ? { status: 200 } : 'hang'))
    const { url: databaseUrl, drop } = await createTestDatabase()
    const env = {
      DATABASE_URL: databaseUrl,
      ...hookEnv(receiver.url),
      OUTBOX_POLL_MS: '50',
      WEBHOOK_TIMEOUT_MS: '1000',
      // One attempt at a time: the second message is committed but never attempted before the kill.
      OUTBOX_MAX_IN_FLIGHT: '1',
      RATE_LIMITS: 'off',
    }
    let first: Awaited<ReturnType<typeof startServer>> | undefined
    let second: Awaited<ReturnType<typeof startServer>> | undefined
    try {
      first = await startServer(env)
      const api = async (path: string, token: string | undefined, body: object) => {
        const res = await fetch(`${first?.url}/api/v1${path}`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            ...(token ? { authorization: `Bearer ${token}` } : {}),
          },
          body: JSON.stringify(body),
        })
        if (res.status >= 300) throw new Error(`${path}: ${res.status} ${await res.text()}`)
        return res.json() as Promise<Record<string, unknown>>
      }
      const reg = (name: string) =>
        api('/auth/register', undefined, {
          email: `${name}.${Date.now()}@example.com`,
          password: 'Sup3r-secret!',
          full_name: name,
        })
      const ann = await reg('ann')
      const bob = await reg('bob')
      const token = ann.access_token as string
      const group = await api('/chat/groups', token, {
        title: 'Kill',
        member_ids: [(bob.user as { id: string }).id],
      })
      const one = await api(`/chat/conversations/${group.id}/messages`, token, { content: 'one' })
      const [attempt] = await receiver.waitFor((all) => all.length >= 1)
      const two = await api(`/chat/conversations/${group.id}/messages`, token, { content: 'two' })

      first.child.kill('SIGKILL')
      await once(first.child, 'exit')
      answering = true
      second = await startServer({ ...env, OUTBOX_MAX_IN_FLIGHT: '32' })
      const all = await receiver.waitFor(
        (rs) => [one.id, two.id].every((id) => rs.some((r) => r.answered === 200 && messageIdOf(r) === id)),
        30_000,
      )
      const oneAgain = all.find((r) => r.answered === 200 && messageIdOf(r) === one.id) as Received
      // The interrupted attempt is retried under the same id, so the receiver can tell.
      expect(oneAgain.id).toBe(attempt?.id)
      expect(messageIdOf(attempt as Received)).toBe(one.id)
      expect(verify(TEST_WEBHOOK_SECRET, oneAgain)).toMatchObject({ type: 'message.created' })
      expect(all.filter((r) => messageIdOf(r) === two.id && r.answered === 200)).toHaveLength(1)
    } finally {
      first?.child.kill('SIGKILL')
      second?.child.kill('SIGTERM')
      if (second && second.child.exitCode === null) await once(second.child, 'exit')
      await receiver.close()
      await drop()
    }
  }, 120_000)
})
