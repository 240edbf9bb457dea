import { randomBytes } from 'node:crypto'
import { and, eq } from 'drizzle-orm'
import { describe, expect, it } from 'vitest'
import { NotFoundError } from '../../src/errors.js'
import { newId } from '../../src/lib/ids.js'
import {
  conversationsOf,
  findConversation,
  findDirect,
  insertConversation,
  lockConversation,
  memberships,
  position,
  setTitle,
} from '../../src/store/conversations.js'
import type { Db } from '../../src/store/db.js'
import {
  countMembers,
  deleteMember,
  findDeparture,
  findMember,
  handOwnershipOn,
  insertMembers,
  membersOf,
  peersOf,
  recordDeparture,
  setMemberRole,
} from '../../src/store/members.js'
import { conversationMembers, conversations } from '../../src/store/schema.js'
import { DRIVERS } from '../helpers/app.js'
import { makeGroup, makeUser, makeUsers, sendMany, useStore } from '../helpers/store.js'

/**
 * The conversations and memberships store on PostgreSQL and on PGlite. Orderings that depend on
 * time (activity, joining) are set explicitly on the rows: rows written in one statement share a
 * timestamp, and waiting for the clock to move would make the tests slow and flaky.
 */

type Store = { readonly db: Db }

const T0 = Date.parse('2030-01-01T00:00:00.000Z')
const at = (minutes: number) => new Date(T0 + minutes * 60_000)

const setJoined = (db: Db, conversationId: string, userId: string, when: Date) =>
  db
    .update(conversationMembers)
    .set({ joinedAt: when })
    .where(
      and(eq(conversationMembers.conversationId, conversationId), eq(conversationMembers.userId, userId)),
    )

const setActivity = (db: Db, conversationId: string, when: Date) =>
  db.update(conversations).set({ lastActivityAt: when }).where(eq(conversations.id, conversationId))

/** The cursor after a page of conversations, as the service encodes it. */
function keyset(page: { lastActivityAt: Date; id: string }[]) {
  const last = page.at(-1)
  if (!last) throw new Error('an empty page has no cursor')
  return { at: last.lastActivityAt, id: last.id }
}

const roles = async (db: Db, conversationId: string) =>
  Object.fromEntries((await membersOf(db, [conversationId])).map((m) => [m.userId, m.role]))

function conversationsContract(store: Store) {
  it('insertConversation stores the conversation with its first members', async () => {
    const [owner, a] = await makeUsers(store.db, 2)
    const id = newId()
    const created = await insertConversation(
      store.db,
      { id, kind: 'group', title: 'Plans', createdBy: owner.id },
      [
        { userId: owner.id, role: 'owner' },
        { userId: a.id, role: 'admin' },
      ],
    )
    expect(created).toBe(true)
    expect(await findConversation(store.db, id)).toMatchObject({
      id,
      kind: 'group',
      title: 'Plans',
      directKey: null,
      createdBy: owner.id,
      lastSeq: 0,
      membersVersion: 0,
    })
    expect(await countMembers(store.db, id)).toBe(2)
    expect((await findMember(store.db, id, a.id))?.role).toBe('admin')
    expect(await findConversation(store.db, newId())).toBeUndefined()
    await setTitle(store.db, id, 'Other plans')
    expect((await findConversation(store.db, id))?.title).toBe('Other plans')
  })

  it('a second direct conversation with the same key returns false and leaves nothing behind', async () => {
    const [a, b] = await makeUsers(store.db, 2)
    const directKey = [a.id, b.id].sort().join(':')
    const pair = [
      { userId: a.id, role: 'member' as const },
      { userId: b.id, role: 'member' as const },
    ]
    const first = newId()
    const second = newId()
    expect(
      await insertConversation(store.db, { id: first, kind: 'direct', directKey, createdBy: a.id }, pair),
    ).toBe(true)
    expect(
      await insertConversation(store.db, { id: second, kind: 'direct', directKey, createdBy: b.id }, pair),
    ).toBe(false)
    expect((await findDirect(store.db, directKey))?.id).toBe(first)
    expect(await findConversation(store.db, second)).toBeUndefined()
    expect(await findDirect(store.db, `${newId()}:${newId()}`)).toBeUndefined()
  })

  it('insertConversation rethrows a conflict that is not a direct key (a reused group id)', async () => {
    const owner = await makeUser(store.db)
    const id = await makeGroup(store.db, owner)
    const again = insertConversation(store.db, { id, kind: 'group', createdBy: owner.id }, [])
    await expect(again).rejects.toThrow()
  })

  it('lockConversation returns where the conversation stands and bumps membersVersion only on removal', async () => {
    const owner = await makeUser(store.db)
    const id = await makeGroup(store.db, owner)
    await sendMany(store.db, owner, id, 2)
    expect(await store.db.transaction((tx) => lockConversation(tx, id))).toEqual({
      seq: 2,
      membersVersion: 0,
    })
    expect(await store.db.transaction((tx) => lockConversation(tx, id, { removal: true }))).toEqual({
      seq: 2,
      membersVersion: 1,
    })
    expect(await store.db.transaction((tx) => lockConversation(tx, id, { removal: false }))).toEqual({
      seq: 2,
      membersVersion: 1,
    })
    expect(await position(store.db, id)).toEqual({ seq: 2, membersVersion: 1 })
  })

  it("takes the caller's transaction: a rollback undoes the conversation and its members", async () => {
    const owner = await makeUser(store.db)
    const id = newId()
    const attempt = store.db.transaction(async (tx) => {
      await insertConversation(tx, { id, kind: 'group', createdBy: owner.id }, [
        { userId: owner.id, role: 'owner' },
      ])
      expect(await countMembers(tx, id)).toBe(1)
      tx.rollback()
    })
    await expect(attempt).rejects.toThrow()
    expect(await findConversation(store.db, id)).toBeUndefined()
    expect(await memberships(store.db, owner.id)).toEqual([])
  })

  it('lockConversation on an unknown conversation throws NotFoundError', async () => {
    await expect(store.db.transaction((tx) => lockConversation(tx, newId()))).rejects.toBeInstanceOf(
      NotFoundError,
    )
  })

  it('position is 0/0 for an unknown conversation; memberships lists only the user’s', async () => {
    expect(await position(store.db, newId())).toEqual({ seq: 0, membersVersion: 0 })
    const [u, other] = await makeUsers(store.db, 2)
    const mine = await makeGroup(store.db, u)
    const shared = await makeGroup(store.db, other, [u])
    await makeGroup(store.db, other)
    await sendMany(store.db, u, shared, 3)
    await store.db.transaction((tx) => lockConversation(tx, shared, { removal: true }))
    const got = await memberships(store.db, u.id)
    expect(got.sort((x, y) => x.conversationId.localeCompare(y.conversationId))).toEqual(
      [
        { conversationId: mine, seq: 0, membersVersion: 0, joinedSeq: 0, role: 'owner' },
        { conversationId: shared, seq: 3, membersVersion: 1, joinedSeq: 0, role: 'member' },
      ].sort((x, y) => x.conversationId.localeCompare(y.conversationId)),
    )
    expect(await memberships(store.db, newId())).toEqual([])
  })

  it('conversationsOf orders by last activity then id, both descending, and pages by that keyset', async () => {
    const [u, other] = await makeUsers(store.db, 2)
    const ids: string[] = []
    for (let i = 0; i < 4; i++) ids.push(await makeGroup(store.db, u))
    await makeGroup(store.db, other) // not the user's: never listed
    const [c0, c1, c2, c3] = ids as [string, string, string, string]
    await setActivity(store.db, c0, at(1))
    await setActivity(store.db, c1, at(3))
    await setActivity(store.db, c2, at(2))
    await setActivity(store.db, c3, at(2))
    const tied = [c2, c3].sort().reverse()
    const expected = [c1, ...tied, c0]
    expect((await conversationsOf(store.db, u.id, undefined, 10)).map((c) => c.id)).toEqual(expected)
    const page1 = await conversationsOf(store.db, u.id, undefined, 2)
    expect(page1.map((c) => c.id)).toEqual(expected.slice(0, 2))
    // The cursor lands between the two conversations with the same activity.
    const page2 = await conversationsOf(store.db, u.id, keyset(page1), 2)
    expect(page2.map((c) => c.id)).toEqual(expected.slice(2, 4))
    expect(await conversationsOf(store.db, u.id, keyset(page2), 2)).toEqual([])
  })
}

function membersContract(store: Store) {
  it('insertMembers ignores existing members and returns only the new ones', async () => {
    const [owner, a, b] = await makeUsers(store.db, 3)
    const id = await makeGroup(store.db, owner, [a])
    const added = await insertMembers(store.db, id, [
      { userId: a.id, role: 'admin' },
      { userId: b.id, role: 'member' },
    ])
    expect(added.map((m) => [m.userId, m.role])).toEqual([[b.id, 'member']])
    // An existing member keeps their role: re-adding is not a role change.
    expect((await findMember(store.db, id, a.id))?.role).toBe('member')
    expect(await insertMembers(store.db, id, [])).toEqual([])
    expect(await countMembers(store.db, id)).toBe(3)
  })

  it('deleteMember returns the removed membership once', async () => {
    const [owner, a] = await makeUsers(store.db, 2)
    const id = await makeGroup(store.db, owner, [a])
    expect(await deleteMember(store.db, id, a.id)).toMatchObject({ conversationId: id, userId: a.id })
    expect(await deleteMember(store.db, id, a.id)).toBeUndefined()
    expect(await findMember(store.db, id, a.id)).toBeUndefined()
    expect(await countMembers(store.db, id)).toBe(1)
  })

  it('setMemberRole changes a non-owner and never the owner', async () => {
    const [owner, a, stranger] = await makeUsers(store.db, 3)
    const id = await makeGroup(store.db, owner, [a])
    expect(await setMemberRole(store.db, id, a.id, 'admin')).toMatchObject({ userId: a.id, role: 'admin' })
    expect(await setMemberRole(store.db, id, owner.id, 'member')).toBeUndefined()
    expect(await setMemberRole(store.db, id, stranger.id, 'admin')).toBeUndefined()
    expect(await roles(store.db, id)).toEqual({ [owner.id]: 'owner', [a.id]: 'admin' })
  })

  it('handOwnershipOn prefers the longest-serving admin over earlier members', async () => {
    const [owner, early, admin1, admin2] = await makeUsers(store.db, 4)
    const id = await makeGroup(store.db, owner, [early, admin1, admin2])
    await setMemberRole(store.db, id, admin1.id, 'admin')
    await setMemberRole(store.db, id, admin2.id, 'admin')
    await setJoined(store.db, id, early.id, at(0))
    await setJoined(store.db, id, admin1.id, at(2))
    await setJoined(store.db, id, admin2.id, at(1))
    await deleteMember(store.db, id, owner.id)
    await handOwnershipOn(store.db, id)
    expect(await roles(store.db, id)).toEqual({
      [early.id]: 'member',
      [admin1.id]: 'admin',
      [admin2.id]: 'owner',
    })
  })

  it('handOwnershipOn falls back to the longest-serving member, ties broken by user id', async () => {
    const [owner, a] = await makeUsers(store.db, 2)
    // The tied pair is added high id first, so only the id order (not insertion order) picks low.
    const tail = randomBytes(6).toString('hex')
    const high = await makeUser(store.db, 'High', undefined, `ffffffff-ffff-4fff-bfff-${tail}`)
    const low = await makeUser(store.db, 'Low', undefined, `00000000-0000-4000-8000-${tail}`)
    const id = await makeGroup(store.db, owner, [a, high, low])
    await setJoined(store.db, id, a.id, at(5))
    await setJoined(store.db, id, high.id, at(3))
    await setJoined(store.db, id, low.id, at(3))
    await deleteMember(store.db, id, owner.id)
    await handOwnershipOn(store.db, id)
    expect(await roles(store.db, id)).toEqual({ [a.id]: 'member', [high.id]: 'member', [low.id]: 'owner' })
    // Nobody left to hand it to: nothing happens, nothing throws.
    const lonely = await makeGroup(store.db, a)
    await deleteMember(store.db, lonely, a.id)
    await handOwnershipOn(store.db, lonely)
    expect(await countMembers(store.db, lonely)).toBe(0)
  })

  it('membersOf lists members with names in joining order, or only the given user', async () => {
    const owner = await makeUser(store.db, 'Olive Owner')
    const a = await makeUser(store.db, 'Ann A')
    const b = await makeUser(store.db, 'Ben B')
    const one = await makeGroup(store.db, owner, [a, b])
    const two = await makeGroup(store.db, a)
    await setJoined(store.db, one, owner.id, at(2))
    await setJoined(store.db, one, a.id, at(3))
    await setJoined(store.db, one, b.id, at(1))
    await setJoined(store.db, two, a.id, at(4))
    const all = await membersOf(store.db, [one, two])
    expect(all.map((m) => [m.conversationId, m.userId, m.fullName, m.role])).toEqual([
      [one, b.id, 'Ben B', 'member'],
      [one, owner.id, 'Olive Owner', 'owner'],
      [one, a.id, 'Ann A', 'member'],
      [two, a.id, 'Ann A', 'owner'],
    ])
    const onlyA = await membersOf(store.db, [one, two], a.id)
    expect(onlyA.map((m) => [m.conversationId, m.role])).toEqual([
      [one, 'member'],
      [two, 'owner'],
    ])
    expect(await membersOf(store.db, [])).toEqual([])
  })

  it('peersOf lists distinct other members everywhere, or in one conversation, up to cap', async () => {
    const [u, a, b, c, outsider] = await makeUsers(store.db, 5)
    const one = await makeGroup(store.db, u, [a, b])
    const two = await makeGroup(store.db, b, [u, c])
    await makeGroup(store.db, outsider, [a]) // a's other group: outsider shares nothing with u
    expect((await peersOf(store.db, u.id, undefined, 100)).sort()).toEqual([a.id, b.id, c.id].sort())
    expect((await peersOf(store.db, u.id, one, 100)).sort()).toEqual([a.id, b.id].sort())
    expect((await peersOf(store.db, u.id, two, 100)).sort()).toEqual([b.id, c.id].sort())
    expect(await peersOf(store.db, u.id, undefined, 2)).toHaveLength(2)
    expect(await peersOf(store.db, outsider.id, undefined, 100)).toEqual([a.id])
  })

  it('recordDeparture upserts where a removed member stopped; findDeparture reads it', async () => {
    const [owner, a] = await makeUsers(store.db, 2)
    const id = await makeGroup(store.db, owner, [a])
    expect(await findDeparture(store.db, id, a.id)).toBeUndefined()
    await recordDeparture(store.db, id, a.id, { seq: 3, membersVersion: 1 })
    expect(await findDeparture(store.db, id, a.id)).toEqual({ seq: 3, membersVersion: 1 })
    // Removed again after rejoining: the later removal replaces the earlier one.
    await recordDeparture(store.db, id, a.id, { seq: 7, membersVersion: 2 })
    expect(await findDeparture(store.db, id, a.id)).toEqual({ seq: 7, membersVersion: 2 })
    expect(await findDeparture(store.db, id, owner.id)).toBeUndefined()
  })
}

describe.each(DRIVERS)('store on %s', (driver) => {
  const store = useStore(driver)
  describe('conversations', () => conversationsContract(store))
  describe('members', () => membersContract(store))
})
