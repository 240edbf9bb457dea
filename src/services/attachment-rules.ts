import { invalid, ValidationError } from '../errors.js'
import { storableProblems } from './text.js'

/**
 * What an attachment may be called and be, independent of where it is stored. The content type a
 * client declares is never trusted for rendering: only these image types are served inline, and
 * only after their header was read as that image.
 */
export const SAFE_IMAGE_TYPES: ReadonlyMap<string, string> = new Map([
  ['image/png', 'png'],
  ['image/jpeg', 'jpg'],
  ['image/gif', 'gif'],
  ['image/webp', 'webp'],
])

export const FILENAME_MAX = 200

/**
 * A file name safe to store and to put in a header: the last path segment only, no control or
 * reserved characters (`<>:"/\|?*`), Unicode in NFC, no leading dots (hidden files) or trailing
 * dots and spaces, at most FILENAME_MAX characters keeping the extension. Never empty.
 */
export function sanitizeFilename(raw: string): string {
  const problems = storableProblems(raw, 'filename')
  if (problems.length > 0) throw new ValidationError(problems)
  const last = raw.normalize('NFC').split(/[/\\]/).at(-1) ?? ''
  let name = last
    .replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}<>:"|?*]/gu, '')
    .replace(/\s+/g, ' ')
    .replace(/^[\s.]+|[\s.]+$/g, '')
  const chars = [...name]
  if (chars.length > FILENAME_MAX) {
    const dot = name.lastIndexOf('.')
    const ext = dot > 0 && name.length - dot <= 16 ? name.slice(dot) : ''
    name = chars.slice(0, FILENAME_MAX - [...ext].length).join('') + ext
  }
  return name === '' ? 'file' : name
}

/** `Image/PNG; charset=x` → `image/png`; a malformed type is a 422. */
export function normalizeContentType(raw: string): string {
  const type = (raw.split(';')[0] ?? '').trim().toLowerCase()
  if (!/^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/.test(type)) {
    throw invalid('content_type', 'must be a media type such as image/png')
  }
  return type
}
