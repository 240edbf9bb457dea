import { mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { errorHandler } from '../../src/http/problem.js'
import { storageRoutes } from '../../src/http/storage-routes.js'
import type { Services } from '../../src/services/index.js'
import type { ObjectStorage } from '../../src/services/object-storage.js'
import { LocalObjectStorage } from '../../src/storage/local.js'
import { S3ObjectStorage } from '../../src/storage/s3.js'
import { startS3 } from '../helpers/s3.js'

/**
 * One suite for every ObjectStorage: the local disk one (its URLs answered by the app's storage
 * routes) and the S3 one against a real S3-protocol server (s3rver) started here.
 */
interface Harness {
  /** A storage whose clock runs `offsetMs` behind (or ahead of) real time. */
  storage(offsetMs?: number): ObjectStorage
  /** Where a relative URL (local storage) is resolved. */
  base: string
  close(): Promise<void>
}

async function localHarness(): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'chat-objects-'))
  const make = (offsetMs = 0) =>
    new LocalObjectStorage(dir, 'conformance-secret', () => Date.now() + offsetMs)
  const app: FastifyInstance = Fastify()
  app.setErrorHandler(errorHandler)
  await app.register(storageRoutes, { services: { objectServer: make() } as unknown as Services })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return {
    storage: make,
    base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
    close: async () => {
      await app.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

async function s3Harness(): Promise<Harness> {
  const s3 = await startS3()
  const made: S3ObjectStorage[] = []
  return {
    storage: (offsetMs = 0) => {
      const s = new S3ObjectStorage(s3.settings, () => Date.now() + offsetMs)
      made.push(s)
      return s
    },
    base: s3.settings.endpoint,
    close: async () => {
      for (const s of made) s.close()
      await s3.close()
    },
  }
}

const HARNESSES = { local: localHarness, s3: s3Harness }

describe.each(Object.keys(HARNESSES) as (keyof typeof HARNESSES)[])(
  'ObjectStorage conformance: %s',
  (kind) => {
    let h: Harness
    let storage: ObjectStorage
    beforeAll(async () => {
      h = await HARNESSES[kind]()
      storage = h.storage()
    })
    afterAll(async () => h?.close())

    let n = 0
    const newKey = () => `attachments/conformance/${kind}-${process.pid}-${++n}`
    const inAMinute = () => new Date(Date.now() + 60_000)
    const upload = async (
      s: ObjectStorage,
      key: string,
      body: string,
      declared = Buffer.byteLength(body),
    ) => {
      const target = await s.presignUpload(key, {
        contentType: 'text/plain',
        size: declared,
        expiresAt: inAMinute(),
      })
      expect(target.method).toBe('PUT')
      const headers = { ...target.headers }
      delete headers['content-length'] // fetch sets it from the body
      return fetch(new URL(target.url, h.base), { method: 'PUT', headers, body })
    }

    it('stores what a presigned upload sends and serves it from a presigned download', async () => {
      const key = newKey()
      const res = await upload(storage, key, 'hello, attachment')
      expect(res.status, await res.text()).toBeLessThan(300)
      expect(await storage.size(key)).toBe(17)
      expect((await storage.readStart(key, 5)).toString()).toBe('hello')
      expect((await storage.readStart(key, 1000)).toString()).toBe('hello, attachment')
      const url = await storage.presignDownload(key, {
        filename: 'résumé "final".txt',
        contentType: 'text/plain',
        disposition: 'attachment',
        expiresInSec: 60,
      })
      const got = await fetch(new URL(url, h.base))
      expect(got.status).toBe(200)
      expect(await got.text()).toBe('hello, attachment')
      expect(got.headers.get('content-type')).toMatch(/^text\/plain/)
      expect(got.headers.get('content-disposition')).toBe(
        `attachment; filename="r_sum_ _final_.txt"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.txt`,
      )
    })

    it('answers nothing for an object that does not exist, and deletes idempotently', async () => {
      const key = newKey()
      expect(await storage.size(key)).toBeUndefined()
      expect((await storage.readStart(key, 10)).length).toBe(0)
      await storage.put(key, Buffer.from('made by the server'), 'image/webp')
      expect(await storage.size(key)).toBe(18)
      await storage.delete([key, newKey()])
      expect(await storage.size(key)).toBeUndefined()
      await storage.delete([key])
    })

    it('refuses an expired upload URL and stores nothing', async () => {
      const key = newKey()
      const past = h.storage(-3_600_000)
      const target = await past.presignUpload(key, {
        contentType: 'text/plain',
        size: 5,
        expiresAt: new Date(Date.now() - 3_600_000 + 60_000),
      })
      const headers = { ...target.headers }
      delete headers['content-length']
      const res = await fetch(new URL(target.url, h.base), { method: 'PUT', headers, body: 'hello' })
      expect(res.status).toBe(403)
      expect(await storage.size(key)).toBeUndefined()
    })

    it('refuses an expired download URL', async () => {
      const key = newKey()
      await storage.put(key, Buffer.from('secret'), 'text/plain')
      const url = await h.storage(-3_600_000).presignDownload(key, {
        filename: 'a.txt',
        contentType: 'text/plain',
        disposition: 'attachment',
        expiresInSec: 60,
      })
      const res = await fetch(new URL(url, h.base))
      expect(res.status).toBe(403)
      expect(await res.text()).not.toContain('secret')
    })
  },
)

describe('S3 storage behind a different public address (S3_PUBLIC_ENDPOINT)', () => {
  it('signs URLs for the public endpoint and still talks to the service itself', async () => {
    const s3 = await startS3()
    const storage = new S3ObjectStorage({ ...s3.settings, publicEndpoint: 'http://files.chat.example:9000' })
    try {
      const target = await storage.presignUpload('attachments/public/a', {
        contentType: 'text/plain',
        size: 1,
        expiresAt: new Date(Date.now() + 60_000),
      })
      expect(new URL(target.url).host).toBe('files.chat.example:9000')
      await storage.put('attachments/public/a', Buffer.from('x'), 'text/plain')
      expect(await storage.size('attachments/public/a')).toBe(1)
    } finally {
      storage.close()
      await s3.close()
    }
  })
})

// s3rver checks expiry but neither the signed path nor the signed length: those are S3's own
// promise, and the send-time size check (HEAD) covers a different length whatever the service.
describe('local storage: what only the server of its own URLs can enforce', () => {
  let h: Harness
  beforeAll(async () => {
    h = await localHarness()
  })
  afterAll(async () => h?.close())

  const put = async (key: string, declared: number, body: string, headers: Record<string, string> = {}) => {
    const target = await h.storage().presignUpload(key, {
      contentType: 'text/plain',
      size: declared,
      expiresAt: new Date(Date.now() + 60_000),
    })
    return fetch(new URL(target.url, h.base), { method: 'PUT', headers, body })
  }

  it('refuses a body over the signed size with 413 problem+json and keeps nothing', async () => {
    const res = await put('attachments/local/too-big', 4, 'hello')
    expect(res.status).toBe(413)
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/)
    expect(await h.storage().size('attachments/local/too-big')).toBeUndefined()
  })

  it('never overwrites an object: a second upload to the same URL is a 409', async () => {
    expect((await put('attachments/local/once', 5, 'first')).status).toBe(204)
    const again = await put('attachments/local/once', 5, 'again')
    expect(again.status).toBe(409)
    expect((await h.storage().readStart('attachments/local/once', 10)).toString()).toBe('first')
  })

  it('refuses a download URL used for an upload', async () => {
    const s = h.storage()
    await s.put('attachments/local/read-only', Buffer.from('x'), 'text/plain')
    const url = await s.presignDownload('attachments/local/read-only', {
      filename: 'a',
      contentType: 'text/plain',
      disposition: 'attachment',
      expiresInSec: 60,
    })
    const res = await fetch(new URL(url, h.base), { method: 'PUT', body: 'overwrite' })
    expect(res.status).toBe(403)
  })

  it('refuses a URL whose key was changed', async () => {
    const key = 'attachments/local/tamper-a'
    await h.storage().put(key, Buffer.from('secret'), 'text/plain')
    const url = await h.storage().presignDownload(key, {
      filename: 'a.txt',
      contentType: 'text/plain',
      disposition: 'attachment',
      expiresInSec: 60,
    })
    const other = 'attachments/local/tamper-b'
    await h.storage().put(other, Buffer.from('other secret'), 'text/plain')
    const tampered = url.replace(encodeURIComponent(key), encodeURIComponent(other)).replace(key, other)
    expect(tampered).not.toBe(url)
    const res = await fetch(new URL(tampered, h.base))
    expect(res.status).toBe(403)
  })
})
