import { describe, expect, it } from 'vitest'
import { NotFoundError } from '../../src/errors.js'
import { newId } from '../../src/lib/ids.js'
import { findConversation, lockConversation } from '../../src/store/conversations.js'
import type { Db } from '../../src/store/db.js'
import { deleteMember, findMember, recordDeparture } from '../../src/store/members.js'
import { noExtras } from '../../src/store/message-views.js'
import {
  editMessage,
  lastMessages,
  lockVisibleMessage,
  messagePage,
  messagesAfterFor,
  tombstoneMessage,
} from '../../src/store/messages.js'
import { advanceReadMarker, unreadCounts } from '../../src/store/reads.js'
import type { MessageRow } from '../../src/store/schema.js'
import { DRIVERS } from '../helpers/app.js'
import { commit, makeGroup, makeUsers, req, sendMany, seqs, stored, useStore } from '../helpers/store.js'

/**
 * The message store on PostgreSQL and on PGlite: the group-commit batch (raw SQL whose rows travel
 * as JSON, so it is where the two drivers differ most), history pages, resume reads across a
 * removal, edits, and read markers.
 */

type Store = { readonly db: Db }

/** Removes `userId` as the service does: under the conversation lock, recording where they stopped. */
const removeMember = (db: Db, conversationId: string, userId: string) =>
  db.transaction(async (tx) => {
    const at = await lockConversation(tx, conversationId, { removal: true })
    await deleteMember(tx, conversationId, userId)
    await recordDeparture(tx, conversationId, userId, at)
  })

function batchContract(store: Store) {
  it('storeBatch assigns gapless seqs per conversation across conversations in one batch', async () => {
    const [u, v] = await makeUsers(store.db, 2)
    const a = await makeGroup(store.db, u, [v])
    const b = await makeGroup(store.db, v, [u])
    const { outcomes } = await commit(store.db, [
      req(u.id, a, 'a1'),
      req(v.id, b, 'b1'),
      req(v.id, a, 'a2'),
      req(u.id, b, 'b2'),
      req(u.id, a, 'a3'),
    ])
    const got = outcomes.map((o) => {
      const { message, created } = stored(o)
      return [message.conversationId, message.seq, message.content, created]
    })
    expect(got).toEqual([
      [a, 1, 'a1', true],
      [b, 1, 'b1', true],
      [a, 2, 'a2', true],
      [b, 2, 'b2', true],
      [a, 3, 'a3', true],
    ])
    const next = await commit(store.db, [req(v.id, a, 'a4')])
    expect(stored(next.outcomes[0]).message.seq).toBe(4)
    expect((await findConversation(store.db, a))?.lastSeq).toBe(4)
    expect((await findConversation(store.db, b))?.lastSeq).toBe(2)
    expect(seqs(await messagePage(store.db, a, u.id, { kind: 'after', seq: 0 }, 10))).toEqual([1, 2, 3, 4])
  })

  it('storeBatch stores what it returns, content byte for byte and createdAt to the millisecond', async () => {
    const [u] = await makeUsers(store.db, 1)
    const c = await makeGroup(store.db, u)
    // JSON carries the rows: quotes, backslashes, newlines and astral characters must survive it.
    const content = 'say "hi" \\ back\nslash \\u0041 \u{1F600} é\ttab'
    const { outcomes } = await commit(store.db, [req(u.id, c, content, 'k"\\1')])
    const sent = stored(outcomes[0]).message
    const [read] = await messagePage(store.db, c, u.id, { kind: 'after', seq: 0 }, 1)
    expect(read).toEqual({ ...sent, extras: noExtras() })
    expect(read?.content).toBe(content)
    expect(read?.clientMsgId).toBe('k"\\1')
    expect((await findConversation(store.db, c))?.lastActivityAt).toEqual(sent.createdAt)
  })

  it('a repeated client_msg_id returns the earlier message with created:false, in one batch and across', async () => {
    const [u, v] = await makeUsers(store.db, 2)
    const c = await makeGroup(store.db, u, [v])
    const first = await commit(store.db, [
      req(u.id, c, 'hello', 'k1'),
      req(u.id, c, 'hello again', 'k1'),
      req(u.id, c, 'no key'),
      req(u.id, c, 'no key'),
    ])
    const [original, inBatch, plain1, plain2] = first.outcomes.map(stored)
    expect(original?.created).toBe(true)
    expect(inBatch).toEqual({ message: original?.message, created: false, parent: null })
    // Without a client_msg_id nothing is deduplicated, and a duplicate takes no seq.
    expect([plain1?.message.seq, plain2?.message.seq]).toEqual([2, 3])
    const later = await commit(store.db, [
      req(u.id, c, 'changed', 'k1'),
      req(v.id, c, 'same key, other sender', 'k1'),
    ])
    const [replay, otherSender] = later.outcomes.map(stored)
    expect(replay).toEqual({ message: original?.message, created: false, parent: null })
    expect(otherSender).toMatchObject({ created: true, message: { seq: 4, senderId: v.id } })
    // The key is per conversation too.
    const d = await makeGroup(store.db, u)
    const elsewhere = await commit(store.db, [req(u.id, d, 'hello', 'k1')])
    expect(stored(elsewhere.outcomes[0])).toMatchObject({
      created: true,
      message: { conversationId: d, seq: 1 },
    })
    expect((await findConversation(store.db, c))?.lastSeq).toBe(4)
  })

  it("a non-member's request gets a NotFoundError outcome and leaves the others stored", async () => {
    const [u, stranger] = await makeUsers(store.db, 2)
    const c = await makeGroup(store.db, u)
    const { outcomes } = await commit(store.db, [
      req(u.id, c, 'one'),
      req(stranger.id, c, 'intruder'),
      req(u.id, newId(), 'nowhere'),
      req(u.id, c, 'two'),
    ])
    expect(outcomes[1]).toBeInstanceOf(NotFoundError)
    expect(outcomes[2]).toBeInstanceOf(NotFoundError)
    expect([outcomes[0], outcomes[3]].map((o) => stored(o).message.seq)).toEqual([1, 2])
    const page = await messagePage(store.db, c, u.id, { kind: 'after', seq: 0 }, 10)
    expect(page.map((m) => m.content)).toEqual(['one', 'two'])
  })

  it('concurrent batches to one conversation queue on its lock: gapless seqs, one message per key', async () => {
    const [u, v] = await makeUsers(store.db, 2)
    const c = await makeGroup(store.db, u, [v])
    // On PostgreSQL each transaction has its own connection and waits for the conversation's row
    // lock; the duplicate's lookup must then see the message committed before the lock was granted.
    const batches = [
      ...[0, 1, 2, 3, 4].map((i) => [req(i % 2 ? u.id : v.id, c, `m${i}`)]),
      [req(u.id, c, 'once', 'dup')],
      [req(u.id, c, 'once', 'dup')],
    ]
    const results = await Promise.all(batches.map((b) => commit(store.db, b)))
    const outcomes = results.map((r) => stored(r.outcomes[0]))
    const created = outcomes.filter((o) => o.created).map((o) => o.message.seq)
    expect(created.sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6])
    const dups = outcomes.slice(5)
    expect(dups.map((o) => o.created).sort()).toEqual([false, true])
    expect(dups[0]?.message).toEqual(dups[1]?.message)
    expect((await findConversation(store.db, c))?.lastSeq).toBe(6)
  })

  it("storeBatch reports each locked conversation's membership version", async () => {
    const [u, v, w] = await makeUsers(store.db, 3)
    const a = await makeGroup(store.db, u, [v, w])
    const b = await makeGroup(store.db, u)
    await removeMember(store.db, a, w.id)
    await removeMember(store.db, a, v.id)
    const { membersVersion } = await commit(store.db, [
      req(u.id, a, 'x'),
      req(u.id, b, 'y'),
      req(u.id, b, 'z'),
    ])
    expect(membersVersion).toEqual(
      new Map([
        [a, 2],
        [b, 0],
      ]),
    )
    // A conversation whose only request was refused is still locked and reported.
    const refused = await commit(store.db, [req(v.id, a, 'gone')])
    expect(refused.outcomes[0]).toBeInstanceOf(NotFoundError)
    expect(refused.membersVersion).toEqual(new Map([[a, 2]]))
  })
}

function messagesContract(store: Store) {
  it('messagePage: after and skip ascend, before descends, each bounded and limited', async () => {
    const [u] = await makeUsers(store.db, 1)
    const c = await makeGroup(store.db, u)
    await sendMany(store.db, u, c, 5)
    const page = async (bound: Parameters<typeof messagePage>[3], limit = 10) =>
      seqs(await messagePage(store.db, c, u.id, bound, limit))
    expect(await page({ kind: 'after', seq: 2 })).toEqual([3, 4, 5])
    expect(await page({ kind: 'after', seq: 2 }, 2)).toEqual([3, 4])
    expect(await page({ kind: 'after', seq: 5 })).toEqual([])
    expect(await page({ kind: 'before', seq: 4 })).toEqual([3, 2, 1])
    expect(await page({ kind: 'before', seq: 4 }, 2)).toEqual([3, 2])
    expect(await page({ kind: 'before', seq: undefined }, 2)).toEqual([5, 4])
    expect(await page({ kind: 'before', seq: 1 })).toEqual([])
    expect(await page({ kind: 'skip', skip: 1 }, 2)).toEqual([2, 3])
    expect(await page({ kind: 'skip', skip: 5 })).toEqual([])
  })

  it('messagePage is empty for a non-member, a removed member and an unknown conversation', async () => {
    const [u, stranger, leaver] = await makeUsers(store.db, 3)
    const c = await makeGroup(store.db, u, [leaver])
    await sendMany(store.db, u, c, 2)
    await removeMember(store.db, c, leaver.id)
    const all = { kind: 'after', seq: 0 } as const
    expect(await messagePage(store.db, c, stranger.id, all, 10)).toEqual([])
    expect(await messagePage(store.db, c, leaver.id, all, 10)).toEqual([])
    expect(await messagePage(store.db, newId(), u.id, all, 10)).toEqual([])
  })

  it('messagesAfterFor: a removed member gets up to their departure, a member all, a stranger nothing', async () => {
    const [u, leaver, stranger] = await makeUsers(store.db, 3)
    const c = await makeGroup(store.db, u, [leaver])
    await sendMany(store.db, u, c, 3)
    await removeMember(store.db, c, leaver.id)
    await sendMany(store.db, u, c, 2)
    const after = async (userId: string, seq: number, limit = 10) =>
      seqs(await messagesAfterFor(store.db, c, userId, seq, limit))
    expect(await after(leaver.id, 0)).toEqual([1, 2, 3])
    expect(await after(leaver.id, 1)).toEqual([2, 3])
    expect(await after(leaver.id, 3)).toEqual([])
    expect(await after(u.id, 0)).toEqual([1, 2, 3, 4, 5])
    expect(await after(u.id, 1, 2)).toEqual([2, 3])
    expect(await after(stranger.id, 0)).toEqual([])
    // A departure from one conversation opens nothing in another.
    const other = await makeGroup(store.db, u)
    await sendMany(store.db, u, other, 1)
    expect(seqs(await messagesAfterFor(store.db, other, leaver.id, 0, 10))).toEqual([])
  })

  it('lastMessages returns the message at each conversation’s last seq, with its extras, and skips empty ones', async () => {
    const [u] = await makeUsers(store.db, 1)
    const a = await makeGroup(store.db, u)
    const b = await makeGroup(store.db, u)
    const empty = await makeGroup(store.db, u)
    await sendMany(store.db, u, a, 3)
    const [lastB] = await sendMany(store.db, u, b, 1)
    const convs = []
    for (const id of [a, b, empty]) {
      const row = await findConversation(store.db, id)
      if (row) convs.push({ id: row.id, lastSeq: row.lastSeq })
    }
    const got = await lastMessages(store.db, u.id, convs)
    expect(got.map((m) => [m.conversationId, m.seq, m.content]).sort()).toEqual(
      [
        [a, 3, 'message 3'],
        [b, 1, 'message 1'],
      ].sort(),
    )
    expect(got.find((m) => m.conversationId === b)).toEqual({ ...lastB, extras: noExtras() })
    expect(await lastMessages(store.db, u.id, [{ id: empty, lastSeq: 0 }])).toEqual([])
    expect(await lastMessages(store.db, u.id, [])).toEqual([])
  })

  it('lockVisibleMessage finds a message for a member only (inside a transaction)', async () => {
    const [u, stranger, leaver] = await makeUsers(store.db, 3)
    const c = await makeGroup(store.db, u, [leaver])
    const [m] = await sendMany(store.db, u, c, 1)
    const id = m?.id ?? ''
    await removeMember(store.db, c, leaver.id)
    const look = (userId: string, messageId: string) =>
      store.db.transaction((tx) => lockVisibleMessage(tx, userId, messageId))
    expect(await look(u.id, id)).toEqual(m)
    expect(await look(stranger.id, id)).toBeUndefined()
    expect(await look(leaver.id, id)).toBeUndefined()
    expect(await look(u.id, newId())).toBeUndefined()
  })

  it('editMessage sets content and editedAt; tombstoneMessage empties content and sets deletedAt', async () => {
    const [u] = await makeUsers(store.db, 1)
    const c = await makeGroup(store.db, u)
    const [m1, m2] = await sendMany(store.db, u, c, 2)
    const edited = await editMessage(store.db, m1 as MessageRow, 'edited')
    expect(edited).toMatchObject({ id: m1?.id, seq: 1, content: 'edited', deletedAt: null })
    expect(edited.editedAt).toBeInstanceOf(Date)
    expect(edited.createdAt).toEqual(m1?.createdAt)
    const gone = await tombstoneMessage(store.db, m2 as MessageRow)
    expect(gone).toMatchObject({ id: m2?.id, seq: 2, content: '' })
    expect(gone.deletedAt).toBeInstanceOf(Date)
    // The tombstone keeps its place in history.
    const page = await messagePage(store.db, c, u.id, { kind: 'after', seq: 0 }, 10)
    expect(page.map((m) => [m.seq, m.content])).toEqual([
      [1, 'edited'],
      [2, ''],
    ])
  })
}

function readsContract(store: Store) {
  it('advanceReadMarker moves forward only, never past the last seq, undefined when nothing moves', async () => {
    const [u, v, stranger] = await makeUsers(store.db, 3)
    const c = await makeGroup(store.db, u, [v])
    await sendMany(store.db, u, c, 3)
    const advance = (userId: string, seq: number) => advanceReadMarker(store.db, c, userId, seq)
    expect(await advance(v.id, 2)).toBe(2)
    expect(await advance(v.id, 2)).toBeUndefined()
    expect(await advance(v.id, 1)).toBeUndefined()
    expect((await findMember(store.db, c, v.id))?.lastReadSeq).toBe(2)
    expect(await advance(v.id, 99)).toBe(3)
    expect(await advance(v.id, 99)).toBeUndefined()
    expect((await findMember(store.db, c, v.id))?.lastReadSeq).toBe(3)
    expect(await advance(stranger.id, 1)).toBeUndefined()
    expect(await advanceReadMarker(store.db, newId(), u.id, 1)).toBeUndefined()
  })

  it("unreadCounts counts others' undeleted messages after the marker, per conversation", async () => {
    const [u, v, w] = await makeUsers(store.db, 3)
    const a = await makeGroup(store.db, u, [v, w])
    const b = await makeGroup(store.db, v, [u])
    const allRead = await makeGroup(store.db, v, [u])
    const notMine = await makeGroup(store.db, v, [w])
    const inA = await sendMany(store.db, v, a, 3) // seqs 1-3
    await sendMany(store.db, u, a, 1) // 4: the user's own
    await sendMany(store.db, w, a, 2) // 5-6
    await tombstoneMessage(store.db, inA[2] as MessageRow) // seq 3 deleted
    await advanceReadMarker(store.db, a, u.id, 1)
    await sendMany(store.db, v, b, 2)
    await sendMany(store.db, v, allRead, 1)
    await advanceReadMarker(store.db, allRead, u.id, 1)
    await sendMany(store.db, v, notMine, 1)
    const counts = await unreadCounts(store.db, u.id, [a, b, allRead, notMine])
    // a: seq 2 (v) + 5, 6 (w); own seq 4 and deleted seq 3 do not count. No entry means none.
    expect(counts).toEqual(
      new Map([
        [a, 3],
        [b, 2],
      ]),
    )
    expect(await unreadCounts(store.db, u.id, [])).toEqual(new Map())
  })
}

describe.each(DRIVERS)('store on %s', (driver) => {
  const store = useStore(driver)
  describe('message batch', () => batchContract(store))
  describe('messages', () => messagesContract(store))
  describe('reads', () => readsContract(store))
})
