import { describe, expect, it } from 'vitest'
import { CHANGES_PAGE, type ChangeSource, resendChanges, SYNC_CHANGES_MAX } from '../../src/ws/changes.js'
import { CONVERSATION, msg } from '../helpers/feed-fakes.js'

/**
 * The re-send half of `sync` (ws/changes.ts) over an in-memory change log: pages in change order,
 * stops at SYNC_CHANGES_MAX with `complete: false`, and sends nothing for a conversation with no
 * change after the client's position.
 */
const OTHER = '00000000-0000-4000-8000-000000000002'

/** `n` messages, seq i changed last at change i. */
function log(n: number, position = n) {
  const all = Array.from({ length: n }, (_, i) => msg(i + 1, { change_seq: i + 1 }))
  const reads: number[] = []
  const source: ChangeSource = {
    changePositions: async (ids) => new Map(ids.map((id) => [id, id === CONVERSATION ? position : 0])),
    changedSince: async (_c, _u, after, upToSeq, limit) => {
      reads.push(after)
      return all.filter((m) => m.change_seq > after && m.seq <= upToSeq).slice(0, limit)
    },
  }
  return { source, reads }
}

function sink() {
  const frames: { type: string; [k: string]: unknown }[] = []
  return { frames, sendPaced: (s: string) => void frames.push(JSON.parse(s)) }
}

describe('resendChanges', () => {
  it('re-sends what changed after the position, up to the cursor, page by page, then changes.synced', async () => {
    const { source, reads } = log(250)
    const out = sink()
    await resendChanges(source, out, 'u', [
      { conversationId: CONVERSATION, seq: 240, change: 10 },
      { conversationId: OTHER, seq: 5, change: 0 },
    ])
    const changed = out.frames.filter((f) => f.type === 'message.changed')
    expect(changed.map((f) => (f.message as { seq: number }).seq)).toEqual(
      Array.from({ length: 230 }, (_, i) => i + 11),
    )
    expect(reads).toEqual([10, 10 + CHANGES_PAGE, 10 + 2 * CHANGES_PAGE])
    expect(out.frames.at(-1)).toEqual({
      type: 'changes.synced',
      conversation_id: CONVERSATION,
      change_seq: 250,
      complete: true,
    })
    // OTHER had no change after the client's position: nothing for it.
    expect(out.frames.filter((f) => f.conversation_id === OTHER)).toEqual([])
  })

  it('stops at SYNC_CHANGES_MAX and says the client must re-read instead', async () => {
    const { source } = log(SYNC_CHANGES_MAX + 1)
    const out = sink()
    await resendChanges(source, out, 'u', [{ conversationId: CONVERSATION, seq: 1e9, change: 0 }])
    expect(out.frames.filter((f) => f.type === 'message.changed')).toHaveLength(SYNC_CHANGES_MAX)
    expect(out.frames.at(-1)).toMatchObject({ type: 'changes.synced', complete: false })
  })

  it('is complete when exactly SYNC_CHANGES_MAX changed', async () => {
    const { source } = log(SYNC_CHANGES_MAX)
    const out = sink()
    await resendChanges(source, out, 'u', [{ conversationId: CONVERSATION, seq: 1e9, change: 0 }])
    expect(out.frames.at(-1)).toMatchObject({ type: 'changes.synced', complete: true })
  })
})
