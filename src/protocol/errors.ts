import Type, { type Static } from 'typebox'
import type { AppErrorCode } from '../errors.js'

/**
 * The closed list of codes an `error` frame may carry (and the `type` names of problem documents
 * for the same conditions over HTTP). Adding one is a protocol change: it goes in the AsyncAPI
 * document with the frame.
 */
export const ERROR_CODES = [
  'not_found',
  'conflict',
  'validation_failed',
  'unauthorized',
  'forbidden',
  'rate_limited',
  'unavailable',
  'internal',
  'invalid_frame',
  'invalid_json',
  'unknown_type',
  'too_large',
  'unsupported_media_type',
  'quota_exceeded',
  'blocked',
  'account_suspended',
  'banned',
] as const

export type ErrorCode = (typeof ERROR_CODES)[number]

export const ErrorCodeSchema = Type.Enum(ERROR_CODES, {
  description: 'Why the frame was refused; a closed list.',
})

// Every code a service error can carry must be sendable: a new AppError code fails to compile here.
const _appCodesAreWireCodes: Static<typeof ErrorCodeSchema> = '' as AppErrorCode
void _appCodesAreWireCodes
