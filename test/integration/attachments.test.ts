import { count, eq, isNull, sql } from 'drizzle-orm'
import { imageSize } from 'image-size'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { attachments, messages } from '../../src/store/schema.js'
import { objectStorage } from '../../src/wiring.js'
import { registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'
import {
  attach,
  createAttachment,
  png,
  sendWithAttachments,
  type Upload,
  uploadTo,
} from '../helpers/attachments.js'
import { startS3, type TestS3 } from '../helpers/s3.js'
import {
  directChat,
  freePort,
  groupChat,
  removeMember,
  restDelete,
  TestSocket,
} from '../helpers/ws-client.js'

const QUOTA = 1024 * 1024
const UPLOAD_TTL_SEC = 900
const UNSENT_TTL_SEC = 3600

type Res = Awaited<ReturnType<TestApp['app']['inject']>>

function expectProblem(res: Res, status: number, detail: RegExp) {
  expect(res.statusCode, res.body).toBe(status)
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
  expect(res.json().detail).toMatch(detail)
}

describe.each(['local', 's3'] as const)('attachments on %s storage', (kind) => {
  let t: TestApp
  let s3: TestS3 | undefined
  /** Moves the app's clock (upload URL expiry, the unsent TTL) instead of waiting. */
  let offsetMs = 0
  let owner: TestUser
  let member: TestUser
  let removed: TestUser
  let stranger: TestUser
  let group: string

  beforeAll(async () => {
    s3 = kind === 's3' ? await startS3() : undefined
    t = await startTestApp({
      env: {
        ...s3?.env,
        ATTACHMENT_QUOTA_BYTES: String(QUOTA),
        ATTACHMENT_UPLOAD_TTL_SEC: String(UPLOAD_TTL_SEC),
        ATTACHMENT_UNSENT_TTL_SEC: String(UNSENT_TTL_SEC),
      },
      clock: () => Date.now() + offsetMs,
    })
    await t.listen()
    owner = await registerUser(t.app, 'Owner')
    member = await registerUser(t.app, 'Member')
    removed = await registerUser(t.app, 'Removed')
    stranger = await registerUser(t.app, 'Stranger')
    group = await groupChat(t.app, owner, [member, removed])
  })
  afterAll(async () => {
    await t?.close()
    await s3?.close()
  })

  const db = () => t.database.db
  const counts = async () => ({
    attachments: (await db().select({ n: count() }).from(attachments))[0]?.n,
    messages: (await db().select({ n: count() }).from(messages))[0]?.n,
  })
  const row = async (id: string) => (await db().select().from(attachments).where(eq(attachments.id, id)))[0]
  const text = (s: string) => ({ filename: 'notes.txt', content_type: 'text/plain', body: Buffer.from(s) })
  const download = (user: TestUser, id: string) =>
    t.app.inject({ url: `/api/v1/chat/attachments/${id}`, headers: user.auth })

  it('happy path: upload, send with an empty text, read back through a 302 with the image size', async () => {
    const image = png(3, 2)
    const imageId = await attach(t, owner, group, {
      filename: '../../etc/photo.png',
      content_type: 'image/png',
      body: image,
    })
    const fileId = await attach(t, owner, group, {
      ...text('hello file'),
      filename: 'report\u0000?.txt'.replace('\u0000', ''),
    })
    const sent = await sendWithAttachments(t, owner, group, [imageId, fileId])
    expect(sent.statusCode, sent.body).toBe(201)
    const message = sent.json()
    expect(message.content).toBe('')
    expect(message.attachments).toEqual([
      {
        id: imageId,
        filename: 'photo.png',
        content_type: 'image/png',
        size: image.length,
        width: 3,
        height: 2,
        url: `/api/v1/chat/attachments/${imageId}`,
        thumbnail_url: `/api/v1/chat/attachments/${imageId}?variant=thumbnail`,
      },
      {
        id: fileId,
        filename: 'report.txt',
        content_type: 'text/plain',
        size: 10,
        width: null,
        height: null,
        url: `/api/v1/chat/attachments/${fileId}`,
        thumbnail_url: null,
      },
    ])
    // History shows the same, to every member.
    const page = await t.app.inject({
      url: `/api/v1/chat/conversations/${group}/messages`,
      headers: member.auth,
    })
    expect(page.json().items.find((m: { id: string }) => m.id === message.id).attachments).toEqual(
      message.attachments,
    )

    const redirect = await download(member, imageId)
    expect(redirect.statusCode).toBe(302)
    expect(redirect.headers['x-content-type-options']).toBe('nosniff')
    const got = await fetch(new URL(String(redirect.headers.location), t.url))
    expect(got.status).toBe(200)
    expect(Buffer.from(await got.arrayBuffer()).equals(image)).toBe(true)
    expect(got.headers.get('content-type')).toBe('image/png')
    expect(got.headers.get('content-disposition')).toMatch(/^inline; filename="photo.png"/)

    const file = await fetch(new URL(String((await download(member, fileId)).headers.location), t.url))
    expect(await file.text()).toBe('hello file')
    // Not a safe image: never rendered by a browser.
    expect(file.headers.get('content-disposition')).toMatch(/^attachment; filename="report.txt"/)
    expect(file.headers.get('content-type')).toBe('application/octet-stream')
    if (kind === 'local') expect(file.headers.get('x-content-type-options')).toBe('nosniff')
  })

  it('makes a thumbnail of an image on first request and stores it beside it', async () => {
    const id = await attach(t, owner, group, {
      filename: 'wide.png',
      content_type: 'image/png',
      body: png(640, 320),
    })
    const message = (await sendWithAttachments(t, owner, group, [id])).json()
    const thumbUrl = message.attachments[0].thumbnail_url as string
    for (let i = 0; i < 2; i++) {
      const redirect = await t.app.inject({ url: thumbUrl, headers: member.auth })
      expect(redirect.statusCode, redirect.body).toBe(302)
      const got = await fetch(new URL(String(redirect.headers.location), t.url))
      expect(got.headers.get('content-type')).toBe('image/webp')
      expect(got.headers.get('content-disposition')).toMatch(/^inline; filename="wide.thumb.webp"/)
      expect(imageSize(new Uint8Array(await got.arrayBuffer()))).toMatchObject({
        type: 'webp',
        width: 320,
        height: 160,
      })
    }
    const key = (await row(id))?.thumbnailKey as string
    expect(key).toMatch(/\.thumb\.webp$/)
    // Not an image: no thumbnail.
    const fileId = await attach(t, owner, group, text('no picture'))
    await sendWithAttachments(t, owner, group, [fileId])
    expectProblem(
      await t.app.inject({
        url: `/api/v1/chat/attachments/${fileId}?variant=thumbnail`,
        headers: member.auth,
      }),
      404,
      /thumbnail not found/,
    )
    // Deleting the message deletes the thumbnail too.
    await restDelete(t.app, owner, message.id)
    await expect.poll(async () => row(id), { interval: 20 }).toBeUndefined()
    expect(await objectStorage(t.services.config).size(key)).toBeUndefined()
  })

  it('sends attachments over the socket (message.send frame) too', async () => {
    const id = await attach(t, owner, group, text('over the socket'))
    const socket = await TestSocket.open(`${t.url}/api/v1/chat/ws`, { token: owner.token })
    try {
      await socket.waitFor((f) => f.type === 'ready')
      socket.send({
        type: 'message.send',
        conversation_id: group,
        content: 'see file',
        client_msg_id: 'f1',
        attachment_ids: [id],
      })
      const ack = await socket.waitFor((f) => f.type === 'message.ack')
      expect((ack.message as { attachments: { id: string }[] }).attachments.map((a) => a.id)).toEqual([id])
      // A resend of the same client_msg_id returns the stored message, not a reuse refusal.
      socket.send({
        type: 'message.send',
        conversation_id: group,
        content: 'see file',
        client_msg_id: 'f1',
        attachment_ids: [id],
      })
      const again = await socket.waitFor((f) => f.type === 'message.ack', {
        from: socket.frames.indexOf(ack) + 1,
      })
      expect((again.message as { id: string }).id).toBe((ack.message as { id: string }).id)
    } finally {
      socket.close()
    }
  })

  it('refuses a stranger and a removed member with 404 on every attachment route', async () => {
    const id = await attach(t, owner, group, text('before the removal'))
    expect((await sendWithAttachments(t, owner, group, [id])).statusCode).toBe(201)
    const spare = await registerUser(t.app, 'Leaver')
    const conv = await groupChat(t.app, owner, [spare])
    const early = await attach(t, owner, conv, text('seen while a member'))
    expect((await sendWithAttachments(t, owner, conv, [early])).statusCode).toBe(201)
    expect((await download(spare, early)).statusCode).toBe(302)
    await removeMember(t.app, owner, conv, spare)
    const before = await counts()
    for (const user of [stranger, spare]) {
      const target = user === spare ? conv : group
      expectProblem(
        await createAttachment(t, user, target, { filename: 'a.txt', content_type: 'text/plain', size: 1 }),
        404,
        /not found/,
      )
      expectProblem(await download(user, user === spare ? early : id), 404, /not found/)
    }
    expect(await counts()).toEqual(before)
  })

  it('refuses an oversized file (413), a wrong type (415) and a quota overrun (413), storing nothing', async () => {
    const user = await registerUser(t.app, 'Quota')
    const conv = await directChat(t.app, user, owner)
    const before = await counts()
    expectProblem(
      await createAttachment(t, user, conv, {
        filename: 'big.mp4',
        content_type: 'video/mp4',
        size: 25 * 1024 * 1024 + 1,
      }),
      413,
      /limit is 26214400/,
    )
    const wrong = await createAttachment(t, user, conv, {
      filename: 'x.exe',
      content_type: 'application/x-msdownload',
      size: 10,
    })
    expectProblem(wrong, 415, /application\/x-msdownload is not accepted/)
    expect(wrong.json().type).toBe('/problems/unsupported_media_type')
    expect(await counts()).toEqual(before)
    const first = await createAttachment(t, user, conv, {
      filename: 'a.pdf',
      content_type: 'application/pdf',
      size: QUOTA - 10,
    })
    expect(first.statusCode).toBe(201)
    const over = await createAttachment(t, user, conv, {
      filename: 'b.pdf',
      content_type: 'application/pdf',
      size: 11,
    })
    expectProblem(over, 413, /quota exceeded: 1048566 of 1048576 bytes/)
    expect(over.json().type).toBe('/problems/quota_exceeded')
    expect((await counts()).attachments).toBe((before.attachments ?? 0) + 1)
  })

  it('refuses an attachment never uploaded, of another user, of another conversation, or used before', async () => {
    const other = await directChat(t.app, owner, member)
    const never = (
      await createAttachment(t, owner, group, { filename: 'a.txt', content_type: 'text/plain', size: 3 })
    ).json().id
    const members = await attach(t, member, group, text('mine'))
    const elsewhere = await attach(t, owner, other, text('elsewhere'))
    const used = await attach(t, owner, group, text('used once'))
    expect((await sendWithAttachments(t, owner, group, [used])).statusCode).toBe(201)
    const before = await counts()
    expectProblem(
      await sendWithAttachments(t, owner, group, [never]),
      422,
      new RegExp(`${never} was never uploaded`),
    )
    expectProblem(
      await sendWithAttachments(t, owner, group, [members]),
      422,
      /not an attachment you created in this conversation/,
    )
    expectProblem(
      await sendWithAttachments(t, owner, group, [elsewhere]),
      422,
      /not an attachment you created in this conversation/,
    )
    const reuse = await sendWithAttachments(t, owner, group, [used], 'again')
    expectProblem(reuse, 409, /already used by another message/)
    // One bad id refuses the whole message: the good one stays unsent.
    const good = await attach(t, owner, group, text('good'))
    expectProblem(await sendWithAttachments(t, owner, group, [good, never]), 422, /never uploaded/)
    expect((await counts()).messages).toBe(before.messages)
    expect((await row(good))?.messageId).toBeNull()
    expect((await row(members))?.messageId).toBeNull()
  })

  it('refuses an expired upload URL; the attachment then counts as never uploaded', async () => {
    offsetMs = -(UPLOAD_TTL_SEC + 60) * 1000
    const res = await createAttachment(t, owner, group, {
      filename: 'late.txt',
      content_type: 'text/plain',
      size: 4,
    })
    offsetMs = 0
    const { id, upload } = res.json() as { id: string; upload: Upload }
    const put = await uploadTo(t, upload, Buffer.from('late'))
    expect(put.status).toBe(403)
    if (kind === 'local') {
      expect(put.headers.get('content-type')).toMatch(/^application\/problem\+json/)
      expect(((await put.json()) as { detail: string }).detail).toBe('the URL has expired')
    }
    const before = await counts()
    expectProblem(await sendWithAttachments(t, owner, group, [id]), 422, /never uploaded/)
    expect(await counts()).toEqual(before)
  })

  it('checks the stored file, not the client: a different size, or an image that is not one, is refused', async () => {
    const short = await createAttachment(t, owner, group, {
      filename: 'a.txt',
      content_type: 'text/plain',
      size: 10,
    })
    const { id, upload } = short.json() as { id: string; upload: Upload }
    await uploadTo(t, upload, Buffer.from('12345'))
    expectProblem(
      await sendWithAttachments(t, owner, group, [id]),
      422,
      /is 5 bytes in storage, not the 10 declared/,
    )
    const fake = await attach(t, owner, group, {
      filename: 'x.png',
      content_type: 'image/png',
      body: Buffer.from('<svg onload=alert(1)>'),
    })
    expectProblem(
      await sendWithAttachments(t, owner, group, [fake]),
      422,
      /is not a readable image\/png image/,
    )
  })

  it('deleting a message deletes its files', async () => {
    const id = await attach(t, owner, group, text('to be deleted'))
    const message = (await sendWithAttachments(t, owner, group, [id])).json()
    const key = (await row(id))?.storageKey as string
    const deleted = await restDelete(t.app, owner, message.id)
    expect(deleted.attachments).toEqual([])
    expect((await download(member, id)).statusCode).toBe(404)
    // Removed after commit, without waiting for the sweep.
    await expect.poll(async () => row(id), { interval: 20 }).toBeUndefined()
    expect(await objectStorage(t.services.config).size(key)).toBeUndefined()
  })

  it('the sweep removes exactly the attachments not sent within the TTL, one instance at a time', async () => {
    await t.services.attachments.sweep() // anything earlier tests left marked
    const user = await registerUser(t.app, 'Sweeper')
    const conv = await directChat(t.app, user, owner)
    const uploaded = await attach(t, user, conv, text('never sent'))
    const notUploaded = (
      await createAttachment(t, user, conv, { filename: 'b.txt', content_type: 'text/plain', size: 5 })
    ).json().id
    const sent = await attach(t, user, conv, text('sent'))
    expect((await sendWithAttachments(t, user, conv, [sent])).statusCode).toBe(201)
    const storage = objectStorage(t.services.config)
    const keyOf = async (id: string) => (await row(id))?.storageKey as string
    const [uploadedKey, sentKey] = [await keyOf(uploaded), await keyOf(sent)]

    // Within the TTL nothing goes.
    expect(await t.services.attachments.sweep()).toEqual({ expired: 0, removed: 0 })
    // Another instance running the sweep: this one skips.
    offsetMs = (UNSENT_TTL_SEC + 60) * 1000
    const blocked = await t.database.db
      .transaction(async (tx) => {
        await tx.execute(sql`select pg_advisory_xact_lock(72410013)`)
        return t.services.attachments.sweep()
      })
      .catch((err) => err)
    expect(blocked).toBeUndefined()

    const unsentNow = await db()
      .select({ id: attachments.id })
      .from(attachments)
      .where(isNull(attachments.messageId))
    const result = await t.services.attachments.sweep()
    offsetMs = 0
    expect(result).toEqual({ expired: unsentNow.length, removed: unsentNow.length })
    expect(await row(uploaded)).toBeUndefined()
    expect(await row(notUploaded)).toBeUndefined()
    expect(await row(sent)).toBeDefined()
    expect(await storage.size(uploadedKey)).toBeUndefined()
    expect(await storage.size(sentKey)).toBe(4)
  })
})

describe('attachments on the embedded default (PGlite, local storage) and their rate limit', () => {
  let t: TestApp
  let owner: TestUser
  let conv: string
  beforeAll(async () => {
    t = await startTestApp({ driver: 'pglite', env: { RATE_LIMITS: 'on', ATTACHMENT_RATE_PER_MIN: '3' } })
    await t.listen()
    owner = await registerUser(t.app, 'Embedded')
    conv = await directChat(t.app, owner, await registerUser(t.app, 'Peer'))
  })
  afterAll(async () => t?.close())

  it('sends, serves, deletes and sweeps; the fourth upload URL within a minute is a 429', async () => {
    const id = await attach(t, owner, conv, { filename: 'p.png', content_type: 'image/png', body: png(4, 4) })
    const sent = await sendWithAttachments(t, owner, conv, [id], 'embedded')
    expect(sent.statusCode, sent.body).toBe(201)
    expect(sent.json().attachments[0]).toMatchObject({ width: 4, height: 4 })
    const redirect = await t.app.inject({ url: `/api/v1/chat/attachments/${id}`, headers: owner.auth })
    expect(redirect.statusCode).toBe(302)
    const unsent = (
      await createAttachment(t, owner, conv, { filename: 'u.txt', content_type: 'text/plain', size: 1 })
    ).json().id
    expect(unsent).toBeDefined()
    expect(
      (await createAttachment(t, owner, conv, { filename: 'v.txt', content_type: 'text/plain', size: 1 }))
        .statusCode,
    ).toBe(201)
    const limited = await createAttachment(t, owner, conv, {
      filename: 'w.txt',
      content_type: 'text/plain',
      size: 1,
    })
    expect(limited.statusCode).toBe(429)
    expect(limited.headers['retry-after']).toBeDefined()
    expect(await t.services.attachments.sweep()).toEqual({ expired: 0, removed: 0 })
    await restDelete(t.app, owner, sent.json().id)
    await expect
      .poll(async () => (await t.database.db.select().from(attachments).where(eq(attachments.id, id)))[0], {
        interval: 20,
      })
      .toBeUndefined()
  })
})

describe('object storage unreachable', () => {
  let t: TestApp
  let owner: TestUser
  let conv: string
  beforeAll(async () => {
    const port = await freePort()
    t = await startTestApp({
      env: {
        S3_ENDPOINT: `http://127.0.0.1:${port}`,
        S3_BUCKET: 'nowhere',
        S3_ACCESS_KEY_ID: 'x',
        S3_SECRET_ACCESS_KEY: 'y',
        S3_FORCE_PATH_STYLE: 'true',
      },
    })
    owner = await registerUser(t.app, 'Outage')
    conv = await directChat(t.app, owner, await registerUser(t.app, 'Peer'))
  })
  afterAll(async () => t?.close())

  it('a send with attachments is a 503 with Retry-After, and nothing is stored', async () => {
    // Presigning needs no connection: the upload URL is handed out.
    const created = await createAttachment(t, owner, conv, {
      filename: 'a.txt',
      content_type: 'text/plain',
      size: 3,
    })
    expect(created.statusCode).toBe(201)
    const res = await sendWithAttachments(t, owner, conv, [created.json().id], 'hi')
    expectProblem(res, 503, /object storage is unavailable/)
    expect(res.headers['retry-after']).toBeDefined()
    const stored = await t.database.db.select().from(messages).where(eq(messages.conversationId, conv))
    expect(stored).toEqual([])
  })
})
