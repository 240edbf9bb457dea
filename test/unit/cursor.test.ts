import { describe, expect, it } from 'vitest'
import { ValidationError } from '../../src/errors.js'
import { decodeCursor, encodeCursor } from '../../src/lib/cursor.js'

const b64 = (text: string) => Buffer.from(text).toString('base64url')

/** The error decodeCursor throws for `cursor` (fails the test if it decodes). */
function refusal(cursor: string, field = 'cursor'): ValidationError {
  try {
    decodeCursor(cursor, field)
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError)
    return err as ValidationError
  }
  throw new Error(`decoded ${cursor}`)
}

describe('page cursors', () => {
  it('round-trip string and number fields through an opaque base64url token', () => {
    const value = { at: '2030-01-01T00:00:00.000Z', id: '0190a8c4-0000-7000-8000-000000000001', seq: 42 }
    const cursor = encodeCursor(value)
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/)
    expect(cursor).not.toContain('42')
    expect(decodeCursor(cursor)).toEqual(value)
    expect(decodeCursor(encodeCursor({}), 'after')).toEqual({})
  })

  it.each([
    ['not base64 JSON', 'not-a-cursor'],
    ['JSON null', b64('null')],
    ['a JSON array', b64('[1,2]')],
    ['a JSON number', b64('42')],
    ['a JSON string', b64('"abc"')],
    ['a nested object', b64('{"a":{"b":1}}')],
    ['a boolean field', b64('{"a":true}')],
    ['a null field', b64('{"a":null}')],
    ['an array field', b64('{"a":[1]}')],
    ['an empty token', ''],
  ])('refuses %s with a validation error on the cursor field', (_, cursor) => {
    const err = refusal(cursor)
    expect(err.errors).toEqual([{ field: 'cursor', message: 'is not a valid cursor' }])
    expect(err.code).toBe('validation_failed')
  })

  it('reports the field it was given', () => {
    expect(refusal('%%%', 'after').errors).toEqual([{ field: 'after', message: 'is not a valid cursor' }])
  })
})
