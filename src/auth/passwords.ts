import { hash, verify } from '@node-rs/argon2'
import type { FieldError } from '../errors.js'

// @node-rs/argon2's defaults are argon2id with OWASP's m=19456 KiB, t=2, p=1; hashing runs on
// libuv's thread pool, so the event loop keeps serving other requests meanwhile.
export const hashPassword = (password: string): Promise<string> => hash(password)

export const verifyPassword = async (passwordHash: string, password: string): Promise<boolean> => {
  try {
    return await verify(passwordHash, password)
  } catch {
    return false
  }
}

let dummyHash: Promise<string> | undefined
/** Spends the time of one verify, so an unknown email costs what a wrong password does. */
export async function burnVerify(password: string): Promise<void> {
  dummyHash ??= hash('not-a-real-password-9!A')
  await verifyPassword(await dummyHash, password)
}

export const PASSWORD_MIN = 8
export const PASSWORD_MAX = 128

/** The rule: at least 8 characters with upper, lower, digit and special; at most 128. */
export function passwordProblems(password: string, field = 'password'): FieldError[] {
  const rules: [boolean, string][] = [
    [password.length >= PASSWORD_MIN, `must be at least ${PASSWORD_MIN} characters`],
    [password.length <= PASSWORD_MAX, `must be at most ${PASSWORD_MAX} characters`],
    [/\p{Lu}/u.test(password), 'must contain an upper-case letter'],
    [/\p{Ll}/u.test(password), 'must contain a lower-case letter'],
    [/\p{Nd}/u.test(password), 'must contain a digit'],
    [/[^\p{L}\p{Nd}\s]/u.test(password), 'must contain a special character'],
  ]
  return rules.filter(([ok]) => !ok).map(([, message]) => ({ field, message }))
}
