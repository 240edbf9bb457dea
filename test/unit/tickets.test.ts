import { describe, expect, it } from 'vitest'
import { newTicket } from '../../src/auth/tickets.js'

describe('newTicket', () => {
  it('makes 192-bit base64url tickets, never twice the same', () => {
    const tickets = Array.from({ length: 1000 }, newTicket)
    for (const t of tickets) expect(t).toMatch(/^[A-Za-z0-9_-]{32}$/)
    expect(new Set(tickets).size).toBe(tickets.length)
  })
})
