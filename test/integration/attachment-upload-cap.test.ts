import { request } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { objectStorage } from '../../src/wiring.js'
import { registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'
import { createAttachment, type Upload } from '../helpers/attachments.js'
import { directChat } from '../helpers/ws-client.js'

const GiB = 1024 ** 3
const MiB = 1024 ** 2
const LIMIT = 25 * MiB

/**
 * The local storage streams uploads to disk and cuts them at the signed size: a client sending
 * 1 GiB (chunked, so no Content-Length gives it away) is answered 413 and disconnected near the
 * limit, and the process's memory does not grow with what it sent.
 */
describe('local storage: a 1 GiB upload is cut at the limit without memory growth', () => {
  let t: TestApp
  let user: TestUser
  let conv: string
  beforeAll(async () => {
    t = await startTestApp()
    await t.listen()
    user = await registerUser(t.app, 'Big')
    conv = await directChat(t.app, user, await registerUser(t.app, 'Peer'))
  })
  afterAll(async () => t?.close())

  const uploadUrl = async () => {
    const res = await createAttachment(t, user, conv, {
      filename: 'big.mp4',
      content_type: 'video/mp4',
      size: LIMIT,
    })
    expect(res.statusCode, res.body).toBe(201)
    const { id, upload } = res.json() as { id: string; upload: Upload }
    return { id, url: new URL(upload.url, t.url) }
  }

  it('refuses at once a Content-Length over the signed size', async () => {
    const { url } = await uploadUrl()
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(url, { method: 'PUT', headers: { 'content-length': String(GiB) } }, (r) => {
        let body = ''
        r.on('data', (c) => {
          body += c
        })
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body }))
      })
      req.on('error', reject)
      req.write(Buffer.alloc(1024))
    })
    expect(res.status).toBe(413)
    expect(JSON.parse(res.body).detail).toMatch(/at most 26214400/)
  })

  it('streams a chunked 1 GiB body to the cap, answers 413, closes, and keeps memory flat', async () => {
    const { id, url } = await uploadUrl()
    const chunk = Buffer.alloc(MiB, 7)
    let produced = 0
    let answered = false
    async function* oneGiB() {
      while (produced < GiB && !answered) {
        produced += chunk.length
        yield chunk
      }
    }
    global.gc?.()
    const baseline = process.memoryUsage().rss
    let peak = baseline
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss)
    }, 10)
    const status = await new Promise<number>((resolve) => {
      const req = request(url, { method: 'PUT', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        answered = true
        res.resume()
        resolve(res.statusCode ?? 0)
      })
      // The server closes the connection after its answer: the client's writes then fail.
      req.on('error', () => resolve(answered ? 413 : -1))
      ;(async () => {
        for await (const c of oneGiB()) {
          if (!req.write(c)) await new Promise((r) => req.once('drain', r))
        }
        if (!answered) req.end()
      })().catch(() => {})
    })
    clearInterval(sampler)
    expect(status).toBe(413)
    // Cut near the limit: what was sent past it is at most what the socket buffers held.
    expect(produced).toBeLessThan(LIMIT + 64 * MiB)
    expect(produced).toBeGreaterThan(LIMIT)
    // Memory did not follow the body (it would be hundreds of MiB had the server buffered it).
    expect(peak - baseline).toBeLessThan(96 * MiB)
    const storage = objectStorage(t.services.config)
    expect(await storage.size(`attachments/${conv}/${id}`)).toBeUndefined()
  })
})
