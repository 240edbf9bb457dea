import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { asAppError, type FieldError, type Quota, RateLimitedError } from '../errors.js'

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
}

/** A field error as clients see it over HTTP: a JSON pointer into the request (`/body/email`). */
export interface PathError {
  path: string
  message: string
}

export interface ProblemInput {
  status: number
  code: string
  detail?: string | undefined
  errors?: PathError[] | undefined
}

/** The RateLimit-* headers (IETF draft names) of a fixed-window limit; schemas.ts documents them. */
export function sendQuota(reply: FastifyReply, quota: Quota): void {
  reply.header('ratelimit-limit', String(quota.limit))
  reply.header('ratelimit-remaining', String(quota.remaining))
  reply.header('ratelimit-reset', String(quota.resetInSec))
}

/** `type` is a relative URI naming the problem; docs/errors.md lists them. */
export function sendProblem(req: FastifyRequest, reply: FastifyReply, p: ProblemInput): FastifyReply {
  if (p.status === 401) reply.header('www-authenticate', 'Bearer')
  return reply
    .code(p.status)
    .type('application/problem+json')
    .send({
      type: `/problems/${p.code}`,
      title: TITLES[p.status] ?? 'Error',
      status: p.status,
      detail: p.detail,
      instance: req.url.split('?')[0],
      ...(p.errors ? { errors: p.errors } : {}),
    })
}

interface AjvError {
  instancePath: string
  message?: string
  keyword: string
  params: Record<string, unknown>
}

/** Ajv's errors as `{path, message}` with a JSON pointer from the request root (`/body/email`). */
function fieldErrors(err: FastifyError): PathError[] {
  const context = err.validationContext ?? 'body'
  return (
    (err.validation as AjvError[] | undefined)?.map((v) => {
      const missing = v.keyword === 'required' ? `/${String(v.params.missingProperty)}` : ''
      const extra = v.keyword === 'additionalProperties' ? `/${String(v.params.additionalProperty)}` : ''
      return { path: `/${context}${v.instancePath}${missing}${extra}`, message: v.message ?? v.keyword }
    }) ?? []
  )
}

/**
 * Where a field named by a service error sits in this request: the path parameters, the query,
 * or (by default) the body. Services name fields plainly; only HTTP knows the request's parts.
 */
function located(req: FastifyRequest, errors: FieldError[]): PathError[] {
  const inPart = (part: unknown, field: string) =>
    typeof part === 'object' && part !== null && Object.hasOwn(part, field)
  return errors.map(({ field, message }) => {
    const part = inPart(req.params, field) ? 'params' : inPart(req.query, field) ? 'querystring' : 'body'
    return { path: `/${part}/${field}`, message }
  })
}

/** The one place errors become HTTP responses. */
export function errorHandler(err: FastifyError, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  const app = asAppError(err)
  if (app) {
    if ('retryAfterSec' in app) reply.header('retry-after', String(app.retryAfterSec))
    if (app instanceof RateLimitedError && app.quota) sendQuota(reply, app.quota)
    if (app.status === 503) req.log.warn({ err }, 'dependency unavailable')
    const errors = app.errors && located(req, app.errors)
    return sendProblem(req, reply, {
      status: app.status,
      code: app.code,
      detail: errors ? errors.map((e) => `${e.path}: ${e.message}`).join('; ') : app.message,
      errors,
    })
  }
  if (err.validation) {
    const errors = fieldErrors(err)
    return sendProblem(req, reply, {
      status: 422,
      code: 'validation_failed',
      detail: errors.map((e) => `${e.path} ${e.message}`).join('; '),
      errors,
    })
  }
  const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500
  if (status === 500) {
    req.log.error({ err }, 'unhandled error')
    return sendProblem(req, reply, { status, code: 'internal', detail: 'internal server error' })
  }
  return sendProblem(req, reply, { status, code: clientErrorCode(err, status), detail: err.message })
}

// Fastify's own 4xx errors get our problem names, not its internal codes (FST_ERR_…).
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'body_too_large',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
}
const STATUS_CODES: Record<number, string> = {
  405: 'method_not_allowed',
  413: 'body_too_large',
  415: 'unsupported_media_type',
}

function clientErrorCode(err: FastifyError, status: number): string {
  return FASTIFY_CODES[err.code] ?? STATUS_CODES[status] ?? 'bad_request'
}
