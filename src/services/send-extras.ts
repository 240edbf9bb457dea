import { invalid } from '../errors.js'
import { isUuid } from '../lib/ids.js'

/** What a send may carry besides its text, as the client gave it. */
export interface SendExtras {
  reply_to?: string | null | undefined
  /** Member ids, and `@all` (group admins and owners) for everyone. */
  mentions?: string[] | undefined
  /** Uploaded attachments (`AttachmentService.prepare` checks them), up to 10. */
  attachment_ids?: string[] | undefined
}

export const MENTIONS_MAX = 50
export const MENTION_ALL = '@all'

export function parseRich(rich: SendExtras): {
  replyToId: string | null
  mentions: string[]
  mentionsAll: boolean
} {
  const replyToId = rich.reply_to ?? null
  if (replyToId !== null && !isUuid(replyToId)) throw invalid('reply_to', 'must be a message id')
  const given = rich.mentions ?? []
  if (given.length > MENTIONS_MAX) throw invalid('mentions', `at most ${MENTIONS_MAX} mentions`)
  const ids = given.filter((m) => m !== MENTION_ALL).map((m) => m.toLowerCase())
  if (ids.some((m) => !isUuid(m))) throw invalid('mentions', `must be member ids or "${MENTION_ALL}"`)
  return {
    replyToId: replyToId?.toLowerCase() ?? null,
    mentions: [...new Set(ids)],
    mentionsAll: given.includes(MENTION_ALL),
  }
}
