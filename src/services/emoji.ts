import { invalid } from '../errors.js'

/**
 * What a reaction may be (docs/architecture.md, "Reactions"):
 * - one Unicode emoji grapheme: a single user-perceived character made only of emoji code points
 *   (pictographs, skin-tone modifiers, zero-width joiners, variation selector 16, regional
 *   indicator pairs for flags, keycaps, tag sequences), e.g. 👍, 👍🏽, 👩‍💻, 🇫🇷, 1️⃣;
 * - or a short name matching SHORT_NAME: `:` + 1–32 of `a-z 0-9 _ + -` + `:`, e.g. `:party_parrot:`.
 */
export const SHORT_NAME = /^:[a-z0-9_+-]{1,32}:$/
export const EMOJI_MAX_LENGTH = 64

// An alternation, not a class: a class holding the zero-width joiner reads as a joined sequence.
const EMOJI_PARTS =
  /^(?:\p{Extended_Pictographic}|\p{Emoji_Modifier}|\p{Regional_Indicator}|\u200D|\uFE0F|\u20E3|[\u{E0020}-\u{E007F}]|[#*0-9])+$/u
const HAS_PICTURE = /\p{Extended_Pictographic}|\p{Regional_Indicator}|\u20E3/u
const graphemes = new Intl.Segmenter('en', { granularity: 'grapheme' })

export function isReaction(value: string): boolean {
  if (value.length === 0 || value.length > EMOJI_MAX_LENGTH) return false
  if (SHORT_NAME.test(value)) return true
  if (!EMOJI_PARTS.test(value) || !HAS_PICTURE.test(value)) return false
  const parts = [...graphemes.segment(value)]
  return parts.length === 1
}

/** The reaction as stored (NFC), or a 422 on `emoji`. */
export function checkReaction(value: string): string {
  const v = value.normalize('NFC')
  if (!isReaction(v)) throw invalid('emoji', 'must be one emoji or a :short_name: (see the API description)')
  return v
}
