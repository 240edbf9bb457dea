import { isUtf8 } from 'node:buffer'
import type { FastifyInstance } from 'fastify'
import { AppError } from '../errors.js'

/** JSON text exchanged between systems must be UTF-8 (RFC 8259 §8.1): anything else is not JSON. */
class InvalidUtf8Error extends AppError {
  readonly status = 400
  readonly code = 'invalid_json'
  constructor() {
    super('the body is not valid UTF-8')
  }
}

/**
 * Fastify's JSON parser decodes the body before parsing it, turning invalid UTF-8 into U+FFFD, so
 * such bytes were stored as a text nobody sent (a socket refuses the same bytes with 1007). This
 * parser checks the bytes first, then hands them to Fastify's own, so every other behaviour
 * (empty and malformed bodies, prototype poisoning, the body limit) stays as it was.
 */
export function refuseInvalidUtf8Json(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    const bytes = body as Buffer
    if (!isUtf8(bytes)) return done(new InvalidUtf8Error(), undefined)
    void parseJson(req, bytes.toString('utf8'), done)
  })
}
