import { describe, expect, it } from 'vitest'
import { ForbiddenError, ValidationError } from '../../src/errors.js'
import { newId } from '../../src/lib/ids.js'
import { messagePage } from '../../src/store/messages.js'
import { bumpReactionsRev, insertReaction, reactionState } from '../../src/store/reactions.js'
import { mentionsPage, unreadMentionCounts } from '../../src/store/rich-pages.js'
import { DRIVERS } from '../helpers/app.js'
import { commit, makeGroup, makeUsers, req, stored, useStore } from '../helpers/store.js'

/**
 * The rich parts of the store on PostgreSQL and on PGlite: replies and mentions inside the group
 * commit (raw SQL whose rows travel as JSON, arrays included), thread summaries when several
 * replies share one batch, @all expansion, and the reactions summary read with the rows.
 */
describe.each(DRIVERS)('rich store on %s', (driver) => {
  const store = useStore(driver)

  it('counts replies to one root within one batch and across batches, first five repliers kept', async () => {
    const people = await makeUsers(store.db, 7)
    const [owner] = people
    const c = await makeGroup(store.db, owner, people.slice(1))
    const root = stored((await commit(store.db, [req(owner.id, c, 'root')])).outcomes[0]).message
    const reply = (u: { id: string }) => ({ ...req(u.id, c, 'r'), replyToId: root.id })
    const first = await commit(store.db, people.slice(0, 4).map(reply))
    expect(first.threads).toHaveLength(1)
    expect(first.threads[0]?.thread.replyCount).toBe(4)
    const second = await commit(store.db, [...people.slice(3).map(reply), reply(owner)])
    expect(second.threads[0]?.thread).toMatchObject({
      replyCount: 9,
      participants: people.slice(0, 5).map((p) => p.id),
    })
    const [page] = await messagePage(store.db, c, owner.id, { kind: 'after', seq: 0 }, 1)
    expect(page?.extras.thread?.replyCount).toBe(9)
    const [r] = await messagePage(store.db, c, owner.id, { kind: 'after', seq: 1 }, 1)
    expect(r?.replyToId).toBe(root.id)
    expect(r?.extras.parent).toEqual({ id: root.id, seq: 1, senderId: owner.id, excerpt: 'root' })
  })

  it('refuses a reply outside the conversation and a mention of a non-member, without failing the batch', async () => {
    const [u, v, outsider] = await makeUsers(store.db, 3)
    const c = await makeGroup(store.db, u, [v])
    const { outcomes } = await commit(store.db, [
      { ...req(u.id, c, 'bad reply'), replyToId: newId() },
      { ...req(u.id, c, 'bad mention'), mentions: [outsider.id] },
      { ...req(v.id, c, 'not an admin'), mentionsAll: true },
      { ...req(u.id, c, 'fine'), mentions: [v.id] },
    ])
    expect(outcomes[0]).toBeInstanceOf(ValidationError)
    expect(outcomes[1]).toBeInstanceOf(ValidationError)
    expect(outcomes[2]).toBeInstanceOf(ForbiddenError)
    expect(stored(outcomes[3]).message).toMatchObject({ seq: 1, mentions: [v.id], mentionsAll: false })
  })

  it('expands @all to every other member, and counts unread mentions after the read marker', async () => {
    const [u, v, w] = await makeUsers(store.db, 3)
    const c = await makeGroup(store.db, u, [v, w])
    await commit(store.db, [
      { ...req(u.id, c, 'all'), mentionsAll: true },
      { ...req(w.id, c, 'v'), mentions: [v.id] },
    ])
    expect(await unreadMentionCounts(store.db, v.id, [c])).toEqual(new Map([[c, 2]]))
    expect(await unreadMentionCounts(store.db, u.id, [c])).toEqual(new Map())
    const page = await mentionsPage(store.db, w.id, undefined, 10)
    expect(page.map((m) => m.content)).toEqual(['all'])
  })

  it('reads the reactions summary with the rows, me for the viewer', async () => {
    const [u, v] = await makeUsers(store.db, 2)
    const c = await makeGroup(store.db, u, [v])
    const m = stored((await commit(store.db, [req(u.id, c, 'hi')])).outcomes[0]).message
    await insertReaction(store.db, c, m.id, u.id, '👍')
    await insertReaction(store.db, c, m.id, v.id, '👍')
    await insertReaction(store.db, c, m.id, v.id, ':x:')
    expect(await bumpReactionsRev(store.db, m.id)).toBe(1)
    const [row] = await messagePage(store.db, c, v.id, { kind: 'after', seq: 0 }, 1)
    // Emojis in the order first used; two used in the same millisecond fall back to their text order.
    expect(row?.extras.reactions).toEqual(
      expect.arrayContaining([
        { emoji: '👍', count: 2, userIds: [u.id, v.id], me: true },
        { emoji: ':x:', count: 1, userIds: [v.id], me: true },
      ]),
    )
    const state = await reactionState(store.db, c, m.id, 1)
    expect(state.reactors[u.id]).toEqual(['👍'])
    expect(state.reactors[v.id]?.sort()).toEqual([':x:', '👍'])
  })
})
