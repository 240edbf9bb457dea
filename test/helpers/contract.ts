import { appendFileSync } from 'node:fs'
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { inject } from 'vitest'

/**
 * Checks HTTP traffic against /openapi.json in both directions, as a validating proxy would:
 * - the server must never accept (2xx/3xx) a request the document refuses (the document is stricter
 *   than the server), and its schema validation must never refuse a request the document allows
 *   (looser);
 * - every response must be documented: its status, media type, body schema, and the headers
 *   clients act on (Retry-After, RateLimit-*, WWW-Authenticate).
 * `startTestApp` installs it on every test app (`watch`) and fails the test file's `close()` on
 * any violation, so the whole integration suite is a contract test.
 */

export interface Exchange {
  method: string
  /** As the document spells it: `/api/v1/chat/conversations/{id}`. */
  path: string
  params: Record<string, unknown>
  query: Record<string, string | string[]>
  /** The body as parsed, before defaults were filled in; undefined when none was read. */
  body?: unknown
  contentType?: string | undefined
  /** Fastify's schema validation refused the request (422 validation_failed). */
  refusedBySchema: boolean
  status: number
  headers: Record<string, unknown>
  payload: string | undefined
}

interface MediaType {
  schema?: unknown
}
interface Header {
  required?: boolean
  schema?: unknown
}
interface Parameter {
  in: string
  name: string
  required?: boolean
  schema?: unknown
}
interface Operation {
  operationId?: string
  parameters?: Parameter[]
  requestBody?: { required?: boolean; content: Record<string, MediaType> }
  responses: Record<string, { content?: Record<string, MediaType>; headers?: Record<string, Header> }>
}
export interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>
  [key: string]: unknown
}

/** Headers whose presence a client acts on: sending one the document does not declare is a violation. */
const CONTRACT_HEADERS = [
  'retry-after',
  'ratelimit-limit',
  'ratelimit-remaining',
  'ratelimit-reset',
  'www-authenticate',
]

const pointer = (...tokens: string[]) =>
  `openapi.json#/${tokens.map((t) => t.replaceAll('~', '~0').replaceAll('/', '~1')).join('/')}`

export class OpenApiContract {
  readonly violations: string[] = []
  readonly counts = { requests: 0, responses: 0 }
  /** Exact JSON (bodies), and text coerced to the schema's type (parameters, headers, forms). */
  private readonly exact: Ajv2020
  private readonly coercing: Ajv2020
  private readonly compiled = new Map<string, ValidateFunction>()

  constructor(readonly doc: OpenApiDocument) {
    const options = { strict: false, allErrors: true, validateFormats: true } as const
    this.exact = new Ajv2020(options)
    this.coercing = new Ajv2020({ ...options, coerceTypes: 'array' })
    for (const ajv of [this.exact, this.coercing]) {
      addFormats.default(ajv)
      ajv.addSchema(doc as object, 'openapi.json')
    }
  }

  /** The violations of one exchange (also appended to `violations`). */
  check(x: Exchange): string[] {
    const op = this.doc.paths[x.path]?.[x.method.toLowerCase()]
    if (!op) return []
    const where = `${op.operationId ?? `${x.method} ${x.path}`} → ${x.status}`
    const found: string[] = []
    this.counts.requests++
    const requestProblems = this.requestProblems(op, x)
    if (requestProblems.length > 0 && x.status < 400) {
      found.push(
        `${where}: the server accepted a request the document refuses: ${requestProblems.join('; ')}`,
      )
    }
    if (requestProblems.length === 0 && x.refusedBySchema) {
      found.push(`${where}: the server's schema refused a request the document allows: ${x.payload ?? ''}`)
    }
    this.counts.responses++
    found.push(...this.responseProblems(op, x).map((p) => `${where}: ${p}`))
    this.violations.push(...found)
    return found
  }

  private requestProblems(op: Operation, x: Exchange): string[] {
    const problems: string[] = []
    const key = this.pathKey(x)
    for (const [i, p] of (op.parameters ?? []).entries()) {
      const source = p.in === 'path' ? x.params : p.in === 'query' ? x.query : undefined
      if (!source) continue
      const value = source[p.name]
      if (value === undefined) {
        if (p.required) problems.push(`${p.in} parameter ${p.name} is required`)
        continue
      }
      const validate = this.validator(
        this.coercing,
        `${pointer(...key, 'parameters', String(i), 'schema')}`,
        true,
      )
      if (!validate({ value })) problems.push(`${p.in} parameter ${p.name}: ${this.explain(validate)}`)
    }
    // Before the body was read (a 401 from an onRequest hook), there is nothing to check it against.
    if (op.requestBody && x.body !== undefined) {
      const media = mediaType(x.contentType) ?? 'application/json'
      if (!op.requestBody.content[media]) {
        problems.push(`request media type ${media} is not documented`)
      } else {
        const form = media === 'application/x-www-form-urlencoded'
        const ajv = form ? this.coercing : this.exact
        const validate = this.validator(ajv, pointer(...key, 'requestBody', 'content', media, 'schema'), form)
        if (!validate(form ? { value: structuredClone(x.body) } : x.body)) {
          problems.push(`body: ${this.explain(validate)}`)
        }
      }
    }
    return problems
  }

  private responseProblems(op: Operation, x: Exchange): string[] {
    const status = String(x.status)
    const response = op.responses[status] ?? op.responses[`${status[0]}XX`] ?? op.responses.default
    if (!response)
      return [`status ${status} is not documented (documented: ${Object.keys(op.responses).join(', ')})`]
    const problems: string[] = []
    const key = [...this.pathKey(x), 'responses', op.responses[status] ? status : `${status[0]}XX`]
    const declared = new Map(
      Object.entries(response.headers ?? {}).map(([k, h]) => [k.toLowerCase(), [k, h] as const]),
    )
    for (const name of CONTRACT_HEADERS) {
      if (x.headers[name] !== undefined && !declared.has(name))
        problems.push(`header ${name} is sent but not documented`)
    }
    for (const [lower, [name, header]] of declared) {
      const value = x.headers[lower]
      if (value === undefined) {
        if (header.required) problems.push(`required header ${name} is missing`)
        continue
      }
      const validate = this.validator(this.coercing, pointer(...key, 'headers', name, 'schema'), true)
      if (!validate({ value: String(value) })) problems.push(`header ${name}: ${this.explain(validate)}`)
    }
    // A 204 or 304 has no body on the wire, whatever Fastify serialized (`null`).
    const hasBody = x.status !== 204 && x.status !== 304 && x.payload !== undefined && x.payload !== ''
    if (!response.content) {
      if (hasBody) problems.push('a body is sent but none is documented')
      return problems
    }
    const media = mediaType(String(x.headers['content-type'] ?? ''))
    if (!media || !response.content[media]) {
      return [
        ...problems,
        `media type ${media} is not documented (documented: ${Object.keys(response.content).join(', ')})`,
      ]
    }
    // A streamed body (the data export) is not seen here; its own tests parse and check it.
    if (!media.endsWith('json') || x.payload === undefined) return problems
    let body: unknown
    try {
      body = JSON.parse(x.payload ?? '')
    } catch {
      return [...problems, `the ${media} body is not JSON`]
    }
    const validate = this.validator(this.exact, pointer(...key, 'content', media, 'schema'), false)
    if (!validate(body)) problems.push(`body: ${this.explain(validate)}`)
    return problems
  }

  private pathKey(x: Exchange): string[] {
    return ['paths', x.path, x.method.toLowerCase()]
  }

  /** A validator of the schema at `ref`; `wrapped` ones take `{ value }` (coercion needs a parent). */
  private validator(ajv: Ajv2020, ref: string, wrapped: boolean): ValidateFunction {
    const cacheKey = `${ajv === this.exact ? 'exact' : 'coercing'} ${wrapped} ${ref}`
    let validate = this.compiled.get(cacheKey)
    if (!validate) {
      const schema = wrapped
        ? { type: 'object', properties: { value: { $ref: ref } }, required: ['value'] }
        : { $ref: ref }
      validate = ajv.compile(schema)
      this.compiled.set(cacheKey, validate)
    }
    return validate
  }

  private explain(validate: ValidateFunction): string {
    return (validate.errors ?? [])
      .map((e) => `${e.instancePath.replace(/^\/value/, '') || '/'} ${e.message ?? e.keyword}`)
      .join(', ')
  }
}

function mediaType(contentType: string | undefined): string | undefined {
  const media = contentType?.split(';')[0]?.trim().toLowerCase()
  return media === '' ? undefined : media
}

/** Fastify's route template (`/conversations/:id`) as OpenAPI spells it (`/conversations/{id}`). */
const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')

interface Recording {
  body?: unknown
  contentType?: string | undefined
  refusedBySchema: boolean
}
const recordings = new WeakMap<FastifyRequest, Recording>()

/**
 * Hooks that check every exchange of `app` against `contract` as it ends (added after the routes:
 * root hooks still apply to them). The body is recorded before validation, so defaults the server
 * fills in do not hide a field the document wrongly requires.
 */
export function watch(app: FastifyInstance, contractOf: () => OpenApiContract | undefined): void {
  app.addHook('preValidation', async (req: FastifyRequest) => {
    recordings.set(req, {
      body: req.body === undefined ? undefined : structuredClone(req.body),
      contentType: req.headers['content-type'],
      refusedBySchema: false,
    })
  })
  app.addHook('onError', async (req: FastifyRequest, _reply: FastifyReply, err: { validation?: unknown }) => {
    const r = recordings.get(req)
    if (r && err.validation) r.refusedBySchema = true
  })
  app.addHook('onSend', async (req: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const route = req.routeOptions.url
    const contract = contractOf()
    if (!contract || route === undefined || req.method === 'HEAD') return payload
    const r = recordings.get(req)
    const search = new URLSearchParams(req.url.split('?')[1] ?? '')
    const query: Record<string, string | string[]> = {}
    for (const name of new Set(search.keys())) {
      const all = search.getAll(name)
      query[name] = all.length === 1 ? (all[0] as string) : all
    }
    contract.check({
      method: req.method,
      path: openApiPath(route),
      params: { ...(req.params as object) },
      query,
      body: r?.body,
      contentType: r?.contentType,
      refusedBySchema: r?.refusedBySchema ?? false,
      status: reply.statusCode,
      headers: reply.getHeaders(),
      payload:
        typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString() : undefined,
    })
    return payload
  })
}

/**
 * Adds what one test app checked to the run's tally, which global-setup prints at the end
 * ("contract coverage: …"): the figure that says the suite really exercises the documents.
 */
export function recordCoverage(kind: 'http' | 'ws', counts: Record<string, number>): void {
  appendFileSync(inject('contractCoverage'), `${JSON.stringify({ kind, ...counts })}\n`)
}
