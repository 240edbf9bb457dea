import { describe, expect, it } from 'vitest'
import { changedSince, changePositions, recordChange, recordChanges } from '../../src/store/changes.js'
import { DRIVERS } from '../helpers/app.js'
import { commit, makeGroup, makeUsers, req, stored, useStore } from '../helpers/store.js'

/**
 * The change counter's set-based writer (`recordChanges`, the retention job's) on PostgreSQL and
 * on PGlite: one statement for many messages of several conversations.
 */
describe.each(DRIVERS)('change counter on %s', (driver) => {
  const store = useStore(driver)

  it('numbers many messages of several conversations in one statement, each in seq order', async () => {
    const [u] = await makeUsers(store.db, 1)
    const a = await makeGroup(store.db, u)
    const b = await makeGroup(store.db, u)
    const sent = (
      await commit(
        store.db,
        [0, 1, 2].flatMap((i) => [req(u.id, a, `a${i}`), req(u.id, b, `b${i}`)]),
      )
    ).outcomes
    const [a1, b1, a2, b2, a3, b3] = sent.map((o) => stored(o).message)
    if (!a1 || !a2 || !a3 || !b1 || !b2 || !b3) throw new Error('six messages were sent')
    // `a` has one change already (to a message that changes again here); `b` has none.
    expect(await store.db.transaction((tx) => recordChange(tx, a, a2.id))).toBe(1)

    // Given out of order, across both conversations.
    await store.db.transaction((tx) => recordChanges(tx, [a3, b2, a2, b1, a1, b3]))

    expect(await changePositions(store.db, [a, b])).toEqual(
      new Map([
        [a, 4],
        [b, 3],
      ]),
    )
    const changed = async (c: string) =>
      (await changedSince(store.db, c, u.id, 0, 10, 10)).map((m) => [m.seq, m.extras.changeSeq])
    expect(await changed(a)).toEqual([
      [1, 2],
      [2, 3],
      [3, 4],
    ])
    expect(await changed(b)).toEqual([
      [1, 1],
      [2, 2],
      [3, 3],
    ])
    // The counters go on from there for the next writer.
    expect(await store.db.transaction((tx) => recordChange(tx, b, b1.id))).toBe(4)
  })
})
