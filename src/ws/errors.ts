import { AppError } from '../services/errors.js'
import { isDatabaseUnavailable } from '../store/pg-errors.js'

/** The one place service errors become `error` frame codes (the WebSocket twin of http/problem.ts). */
export function errorCode(err: unknown): { code: string; message: string } {
  if (err instanceof AppError) return { code: err.code, message: err.message }
  if (isDatabaseUnavailable(err))
    return { code: 'unavailable', message: 'the database is unavailable; retry shortly' }
  return { code: 'internal', message: 'internal error' }
}
