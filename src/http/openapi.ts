import { STATUS_CODES } from 'node:http'
import swagger, { type FastifyDynamicSwaggerOptions } from '@fastify/swagger'
import type { FastifyInstance, RouteOptions } from 'fastify'
import { errors } from './schemas.js'

/**
 * How /openapi.json is produced: @fastify/swagger reads the route schemas (the one source of
 * truth, also used to validate and serialize), and the options below add what routes do not say.
 * test/integration/openapi-lint.test.ts lints the result with Spectral (no warning allowed), and
 * every integration test checks its traffic against it (test/helpers/contract.ts). docs/api.md
 * has the conventions.
 */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  const named = new Set<string>()
  documentRoutes(app, named)
  await app.register(swagger, openApiOptions(named))
}

function openApiOptions(named: Set<string>): FastifyDynamicSwaggerOptions {
  return {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Chat API',
        version: '1.0.0',
        description:
          'Real-time chat backend: accounts, direct and group conversations, ordered message history. ' +
          'Errors are RFC 9457 `application/problem+json`. The WebSocket protocol (`/api/v1/chat/ws`) ' +
          'is described by docs/asyncapi.yaml.',
        contact: { name: 'Chat API maintainers' },
        license: { name: 'UNLICENSED: private project, no rights granted' },
      },
      servers: [
        {
          url: '/',
          description: 'The instance serving this document (local development, staging or production alike)',
          'x-internal': false,
        } as { url: string; description: string },
      ],
      tags: [
        { name: 'auth', description: 'Accounts and tokens: register, sign in, refresh, sign out' },
        { name: 'users', description: 'Profiles and user search' },
        { name: 'chat', description: 'Conversations, members, messages and read markers' },
        { name: 'ops', description: 'Health, readiness and metrics for operators and load balancers' },
        { name: 'attachments', description: 'Files in messages: upload URLs and member-only downloads' },
        { name: 'storage', description: "The embedded local storage's presigned upload and download URLs" },
        { name: 'moderation', description: 'Reporting messages and banning members from groups' },
        { name: 'admin', description: 'Operators only: reports, accounts, any message, the audit log' },
        {
          name: 'webhooks',
          description: 'Operators: webhook endpoints that receive signed events (docs/notifications.md)',
        },
        { name: 'push', description: "Web Push: the VAPID key and your browsers' push subscriptions" },
      ],
      components: {
        securitySchemes: {
          bearer: {
            type: 'oauth2',
            description:
              'HS256 JWT access tokens (RFC8725 practices: algorithm pinned, `iss`/`aud`/`exp` checked), ' +
              'sent as `Authorization: Bearer <token>`; refresh tokens rotate and are single use.',
            flows: {
              password: {
                tokenUrl: '/api/v1/auth/login',
                refreshUrl: '/api/v1/auth/refresh',
                scopes: {
                  operator:
                    "Operators only (/api/v1/admin): the account's role, read on every request, not a token claim (docs/moderation.md)",
                },
              },
            },
          },
          signedUrl: {
            type: 'apiKey',
            in: 'query',
            name: 'sig',
            description:
              "The local storage's presigned URLs (createAttachment, downloadAttachment): an HMAC of the " +
              'operation, key, size and expiry in the query is the credential, as with S3 presigned URLs',
          },
          metricsToken: {
            type: 'http',
            scheme: 'bearer',
            description: 'METRICS_TOKEN, when set: the static token Prometheus sends to /metrics',
          },
        },
      },
    },
    // A schema with an `$id` becomes the component of that name (the default is `def-N`).
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) =>
        typeof json.$id === 'string' ? json.$id : `def-${i}`,
    },
    transformObject: (document) =>
      'openapiObject' in document
        ? clientView(hoistNamedSchemas(document.openapiObject as Document, named))
        : document.swaggerObject,
  }
}

interface Parameter {
  required?: boolean
  schema?: { default?: unknown }
}
interface MediaType {
  schema?: { $ref?: string; required?: string[]; properties?: Record<string, { default?: unknown }> }
}
interface Operation {
  parameters?: Parameter[]
  requestBody?: { content?: Record<string, MediaType> }
  responses?: Record<string, { description?: string; content?: Record<string, MediaType> }>
}
type Document = {
  paths?: Record<string, Record<string, Operation>>
  components?: { schemas?: Record<string, unknown> }
} & Record<string, unknown>

/**
 * @fastify/swagger makes components of the `$id` schemas nested in a route schema, but leaves a
 * response schema that is itself named inline. Each is marked with its name as `title` (see
 * `documentRoutes`): the first copy becomes `#/components/schemas/<name>`, every copy a `$ref`.
 */
function hoistNamedSchemas(doc: Document, named: Set<string>): Document {
  doc.components ??= {}
  doc.components.schemas ??= {}
  const components = doc.components.schemas
  const visit = (node: unknown): void => {
    if (typeof node !== 'object' || node === null) return
    const record = node as Record<string, unknown>
    for (const [key, value] of Object.entries(record)) {
      const title = (value as { title?: unknown } | null)?.title
      if (typeof title === 'string' && named.has(title) && !Object.hasOwn(value as object, '$ref')) {
        if (components[title] === undefined) {
          components[title] = value
          visit(value)
        }
        record[key] = { $ref: `#/components/schemas/${title}` }
      } else {
        visit(value)
      }
    }
  }
  visit(doc.paths)
  for (const component of Object.values({ ...components })) visit(component)
  return doc
}

/**
 * The route schemas say what a handler receives, after Ajv filled in defaults: `limit` is always
 * there. A client need not send a field that has a default, so the document marks it optional.
 * A `404: Problem` written without `errors()` is still documented as problem+json, as it is sent.
 * A response without a description gets its status text (`OK`), not "Default Response".
 */
function clientView(doc: Document): Document {
  for (const byMethod of Object.values(doc.paths ?? {})) {
    for (const op of Object.values(byMethod)) {
      for (const p of op.parameters ?? []) {
        if (p.schema?.default !== undefined) p.required = false
      }
      for (const media of Object.values(op.requestBody?.content ?? {})) {
        const { schema } = media
        if (schema?.required && schema.properties) {
          const props = schema.properties
          schema.required = schema.required.filter((name) => props[name]?.default === undefined)
        }
      }
      for (const [status, response] of Object.entries(op.responses ?? {})) {
        // @fastify/swagger's placeholder for a response whose schema has no description.
        if (response.description === 'Default Response') response.description = STATUS_CODES[status] ?? status
        const json = response.content?.['application/json']
        if (status >= '400' && json?.schema?.$ref === '#/components/schemas/Problem') {
          response.content = { 'application/problem+json': json }
        }
      }
    }
  }
  return doc
}

/**
 * Runs on each route as it is added (so before the route plugins are registered):
 * - marks every response schema with an `$id` for `hoistNamedSchemas` (`title`, when it has none);
 * - documents the problems Fastify itself answers before a handler runs, so no route has to list
 *   them: 400/413/415 on a route with a body (malformed JSON, too large, wrong media type) and
 *   422 on any route with input.
 */
function documentRoutes(app: FastifyInstance, named: Set<string>): void {
  app.addHook('onRoute', (route: RouteOptions) => {
    const schema = route.schema
    if (!schema || schema.hide) return
    for (const s of schemasWithId(schema.response)) {
      s.title ??= s.$id
      if (s.title === s.$id) named.add(s.$id)
    }
    const hasInput = Boolean(schema.body || schema.querystring || schema.params)
    const automatic = {
      ...(schema.body ? errors(400, 413, 415) : {}),
      ...(hasInput ? errors(422) : {}),
    }
    route.schema = { ...schema, response: { ...automatic, ...(schema.response as object) } }
  })
}

function* schemasWithId(node: unknown): Generator<{ $id: string; title?: string }> {
  if (typeof node !== 'object' || node === null) return
  const id = (node as { $id?: unknown }).$id
  if (typeof id === 'string') yield node as { $id: string; title?: string }
  for (const value of Object.values(node)) yield* schemasWithId(value)
}
