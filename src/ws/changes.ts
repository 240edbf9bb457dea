import type { MessageView } from '../protocol/message.js'
import { encode } from './outbound.js'

/** Messages read per query while re-sending changes. */
export const CHANGES_PAGE = 100
/**
 * At most this many changed messages are re-sent per conversation and `sync`; past it the client
 * is told (`complete: false`) to re-read the history it holds, which costs it less.
 */
export const SYNC_CHANGES_MAX = 1000

export interface ChangeSource {
  /** The current change counter of each conversation given. */
  changePositions(ids: string[]): Promise<Map<string, number>>
  /** Messages up to `upToSeq` changed after `afterChange`, in change order (`change_seq` set). */
  changedSince(
    conversationId: string,
    userId: string,
    afterChange: number,
    upToSeq: number,
    limit: number,
  ): Promise<MessageView[]>
}

export interface ChangeSink {
  sendPaced(frame: string): Promise<void> | void
}

/**
 * The second half of `sync` (docs/api.md, "Changes to messages you already have"): for each
 * conversation the client gave a change position for, the messages it holds (seq at or below its
 * cursor) whose latest change is after that position, as `message.changed` in change order, then
 * `changes.synced` with the position to keep. The counter is read first: every change up to it
 * is committed and is in what follows (a message changed again meanwhile is sent in its newer
 * state), and later changes reach the socket live, since it subscribed before the `sync`.
 * Conversations with nothing new cost one query for all of them and send nothing.
 */
export async function resendChanges(
  source: ChangeSource,
  sink: ChangeSink,
  userId: string,
  wanted: { conversationId: string; seq: number; change: number }[],
): Promise<void> {
  if (wanted.length === 0) return
  const now = await source.changePositions(wanted.map((w) => w.conversationId))
  for (const w of wanted) {
    const position = now.get(w.conversationId) ?? 0
    if (position <= w.change) continue
    const complete = await resendOne(source, sink, userId, w)
    await sink.sendPaced(
      encode({ type: 'changes.synced', conversation_id: w.conversationId, change_seq: position, complete }),
    )
  }
}

/** Sends one conversation's changed messages; false when there were more than SYNC_CHANGES_MAX. */
async function resendOne(
  source: ChangeSource,
  sink: ChangeSink,
  userId: string,
  w: { conversationId: string; seq: number; change: number },
): Promise<boolean> {
  let after = w.change
  let sent = 0
  for (;;) {
    const page = await source.changedSince(w.conversationId, userId, after, w.seq, CHANGES_PAGE)
    let pending: Promise<void> | void | undefined
    for (const message of page) {
      if (sent === SYNC_CHANGES_MAX) return false
      pending = sink.sendPaced(
        encode({ type: 'message.changed', conversation_id: w.conversationId, message }),
      )
      after = message.change_seq
      sent++
    }
    // Paced by the socket, like a replay: the next page is read once this one is written.
    if (pending) await pending
    if (page.length < CHANGES_PAGE) return true
  }
}
