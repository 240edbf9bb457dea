import { type FieldError, ValidationError } from '../errors.js'

/**
 * Checks user text that will be stored: trimmed length in code points, and nothing PostgreSQL
 * cannot store byte for byte (NUL, unpaired UTF-16 surrogates).
 */
export function cleanText(value: string, field: string, max: number, min = 1): string {
  const text = value.trim()
  const problems = storableProblems(text, field)
  const length = codePointLength(text, max + 1)
  if (length < min) problems.push({ field, message: `must be at least ${min} character(s) after trimming` })
  if (length > max) problems.push({ field, message: `must be at most ${max} characters` })
  if (problems.length > 0) throw new ValidationError(problems)
  return text
}

function codePointLength(s: string, stopAt: number): number {
  if (s.length < stopAt) {
    let n = 0
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i)
      if (c < 0xd800 || c > 0xdbff) n++
    }
    return n
  }
  let n = 0
  for (const _ of s) if (++n >= stopAt) break
  return n
}

/** Why PostgreSQL could not store `value` byte for byte (NUL, unpaired surrogates); empty when it can. */
export function storableProblems(value: string, field: string): FieldError[] {
  const problems: FieldError[] = []
  if (!value.isWellFormed()) problems.push({ field, message: 'must not contain unpaired surrogates' })
  if (value.includes('\u0000')) problems.push({ field, message: 'must not contain NUL characters' })
  return problems
}
