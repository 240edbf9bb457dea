import { asAppError } from '../errors.js'
import type { ErrorCode } from '../protocol/errors.js'

/** The one place errors become `error` frame codes (the WebSocket twin of http/problem.ts). */
export function errorCode(err: unknown): { code: ErrorCode; message: string } {
  const app = asAppError(err)
  if (app) return { code: app.code, message: app.message }
  return { code: 'internal', message: 'internal error' }
}
