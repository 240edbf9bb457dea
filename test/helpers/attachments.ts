import { crc32, deflateSync } from 'node:zlib'
import type { TestApp, TestUser } from './app.js'

/** A valid PNG of `width` × `height` red pixels, made here (no fixture file). */
export function png(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(data.length)
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data])
    const crc = Buffer.alloc(4)
    crc.writeUInt32BE(crc32(body))
    return Buffer.concat([len, body, crc])
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr.set([8, 2, 0, 0, 0], 8) // 8-bit RGB
  const row = Buffer.concat([Buffer.from([0]), Buffer.alloc(width * 3, 0).fill(Buffer.from([255, 0, 0]))])
  const raw = Buffer.concat(Array.from({ length: height }, () => row))
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ])
}

export interface Upload {
  url: string
  method: 'PUT'
  headers: Record<string, string>
}

/** POST …/attachments; the raw response. */
export const createAttachment = (
  t: TestApp,
  user: TestUser,
  conversationId: string,
  body: { filename: string; content_type: string; size: number },
) =>
  t.app.inject({
    method: 'POST',
    url: `/api/v1/chat/conversations/${conversationId}/attachments`,
    headers: user.auth,
    payload: body,
  })

/** PUTs `body` to an upload target (absolute for S3, relative to the listening app for local). */
export function uploadTo(t: TestApp, upload: Upload, body: Buffer): Promise<Response> {
  const headers = { ...upload.headers }
  delete headers['content-length'] // fetch sets it from the body
  return fetch(new URL(upload.url, t.url), { method: upload.method, headers, body })
}

/** Creates and uploads an attachment; returns its id. */
export async function attach(
  t: TestApp,
  user: TestUser,
  conversationId: string,
  file: { filename: string; content_type: string; body: Buffer },
): Promise<string> {
  const res = await createAttachment(t, user, conversationId, {
    filename: file.filename,
    content_type: file.content_type,
    size: file.body.length,
  })
  if (res.statusCode !== 201) throw new Error(`create attachment: ${res.statusCode} ${res.body}`)
  const { id, upload } = res.json() as { id: string; upload: Upload }
  const put = await uploadTo(t, upload, file.body)
  if (put.status >= 300) throw new Error(`upload: ${put.status} ${await put.text()}`)
  return id
}

/** POST …/messages with attachments; the raw response. */
export const sendWithAttachments = (
  t: TestApp,
  user: TestUser,
  conversationId: string,
  ids: string[],
  content = '',
) =>
  t.app.inject({
    method: 'POST',
    url: `/api/v1/chat/conversations/${conversationId}/messages`,
    headers: user.auth,
    payload: { content, attachment_ids: ids },
  })

/** Creates, uploads (through the app, no listening needed) and sends a small file; returns its id. */
export async function sendFile(t: TestApp, user: TestUser, conversationId: string): Promise<string> {
  const body = Buffer.from('a file only members may read')
  const created = await t.app.inject({
    method: 'POST',
    url: `/api/v1/chat/conversations/${conversationId}/attachments`,
    headers: user.auth,
    payload: { filename: 'world.txt', content_type: 'text/plain', size: body.length },
  })
  const { id, upload } = created.json() as {
    id: string
    upload: { url: string; headers: Record<string, string> }
  }
  const put = await t.app.inject({ method: 'PUT', url: upload.url, headers: upload.headers, payload: body })
  if (put.statusCode !== 204) throw new Error(`upload: ${put.statusCode} ${put.body}`)
  const sent = await t.app.inject({
    method: 'POST',
    url: `/api/v1/chat/conversations/${conversationId}/messages`,
    headers: user.auth,
    payload: { content: '', attachment_ids: [id] },
  })
  if (sent.statusCode !== 201) throw new Error(`send: ${sent.statusCode} ${sent.body}`)
  return id
}
