import { rootCertificates } from 'node:tls'
import { describe, expect, it } from 'vitest'
import {
  announcedMessage,
  PREVIEW_MAX_CHARS,
  type PushPayload,
  preview,
  topicOf,
} from '../../src/services/push.js'
import { parseRetryAfter, trustedCas } from '../../src/services/push-sender.js'

describe('push payload', () => {
  it('previews at most PREVIEW_MAX_CHARS characters without cutting an emoji in half', () => {
    expect(preview('  hi  ', null)).toBe('hi')
    expect(preview('', 'photo.png')).toBe('📎 photo.png')
    expect(preview('', null)).toBeNull()
    const long = '😀'.repeat(500)
    const cut = preview(long, null) as string
    expect([...cut]).toHaveLength(PREVIEW_MAX_CHARS)
    expect(cut.endsWith('😀…')).toBe(true)
  })

  it('stays far below the 4 KB push services accept, at its largest', () => {
    const widest = '𝕎'.repeat(1000)
    const payload: PushPayload = {
      type: 'message.created',
      conversation_id: crypto.randomUUID(),
      conversation_kind: 'group',
      conversation_title: widest.slice(0, 400), // titles are at most 200 characters
      seq: Number.MAX_SAFE_INTEGER,
      message_id: crypto.randomUUID(),
      sender_id: crypto.randomUUID(),
      sender_name: widest.slice(0, 200), // names are at most 100 characters
      preview: preview(widest, null),
      count: 1_000_000,
      mentioned: true,
    }
    expect(Buffer.byteLength(JSON.stringify(payload))).toBeLessThan(3072)
  })

  it('has a Topic of 32 base64url characters per conversation', () => {
    const topic = topicOf('01a2365c-5a88-76f2-9fb0-82199e36a8df')
    expect(topic).toBe('01a2365c5a8876f29fb082199e36a8df')
    expect(topic).toMatch(/^[A-Za-z0-9_-]{32}$/)
  })

  it('reads only message.created events that carry a message', () => {
    const base = { id: 'e', occurredAt: new Date().toISOString(), conversationId: 'c' }
    const message = {
      id: 'm',
      conversation_id: 'c',
      seq: 3,
      sender_id: 's',
      mentions: [],
      mentions_all: false,
    }
    expect(announcedMessage({ ...base, type: 'message.created', data: { message } })).toMatchObject(message)
    expect(announcedMessage({ ...base, type: 'message.updated', data: { message } })).toBeUndefined()
    expect(announcedMessage({ ...base, type: 'message.created', data: null })).toBeUndefined()
    expect(
      announcedMessage({ ...base, type: 'message.created', data: { message: { id: 'm' } } }),
    ).toBeUndefined()
  })
})

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates, and ignores the rest', () => {
    const now = Date.parse('2026-12-02T10:00:00Z')
    expect(parseRetryAfter('7', now)).toBe(7000)
    expect(parseRetryAfter('Wed, 02 Dec 2026 10:00:30 GMT', now)).toBe(30_000)
    expect(parseRetryAfter('Wed, 02 Dec 2026 09:00:00 GMT', now)).toBe(0)
    expect(parseRetryAfter(undefined, now)).toBeUndefined()
    expect(parseRetryAfter('soon', now)).toBeUndefined()
  })
})

describe('trustedCas (PUSH_CA_FILE)', () => {
  it('adds the extra CA to the system ones instead of replacing them', () => {
    const extra = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'
    const all = trustedCas(extra)
    expect(all).toHaveLength(rootCertificates.length + 1)
    expect(all).toEqual(expect.arrayContaining([...rootCertificates, extra]))
  })
})
