import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { SAFE_IMAGE_TYPES } from '../services/attachment-rules.js'
import type { Services } from '../services/index.js'
import { Problem } from './schemas.js'

const File = Type.String({ format: 'binary' })

const SignedQuery = Type.Object(
  {
    op: Type.String({ maxLength: 8 }),
    key: Type.String({ maxLength: 512 }),
    exp: Type.String({ maxLength: 16 }),
    sig: Type.String({ maxLength: 64 }),
  },
  { additionalProperties: Type.String({ maxLength: 2048 }) },
)

/**
 * The presigned URLs of the local disk storage (the embedded default): the HMAC signature in the
 * query is the credential, as with S3. Registered only when that storage is in use.
 */
export const storageRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const server = services.objectServer
  if (!server) return
  // The body is streamed to disk as it arrives, whatever its type: no parser may buffer it.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_req, _payload, done) => done(null))
  const common = { tags: ['storage'], security: [{ signedUrl: [] }] }

  app.put(
    server.path,
    {
      schema: {
        ...common,
        operationId: 'uploadObject',
        summary: 'Upload a file to a URL from createAttachment (local storage only)',
        description:
          'The body is the file. Refused with 403 when the signature is wrong or expired, 413 past the ' +
          'declared size (the connection is then closed), 409 when the file was already uploaded.',
        querystring: SignedQuery,
        response: { 204: Type.Null(), 403: Problem, 409: Problem, 413: Problem },
      },
    },
    async (req, reply) => {
      const length = req.headers['content-length']
      try {
        await server.receive(req.query, length === undefined ? undefined : Number(length), req.raw)
      } catch (err) {
        // The rest of the body is not read: the connection closes once the refusal is sent.
        reply.header('connection', 'close')
        reply.raw.once('finish', () => req.raw.destroy())
        throw err
      }
      return reply.code(204).send(null)
    },
  )

  app.get(
    server.path,
    {
      schema: {
        ...common,
        operationId: 'downloadObject',
        summary: 'Download a file from a URL given by downloadAttachment (local storage only)',
        description: 'Streams the file; 403 when the signature is wrong or expired.',
        querystring: SignedQuery,
        response: {
          200: {
            description: 'The file: safe image types as themselves, everything else as a download',
            content: Object.fromEntries(
              ['application/octet-stream', ...SAFE_IMAGE_TYPES.keys()].map((type) => [
                type,
                { schema: File },
              ]),
            ),
          },
          403: Problem,
          404: Problem,
        },
      },
    },
    async (req, reply) => {
      const file = await server.open(req.query)
      return reply
        .header('content-type', file.contentType)
        .header('content-length', String(file.size))
        .header('content-disposition', file.contentDisposition)
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', 'private, max-age=60')
        .send(file.body as never) // a stream: sent as it is read, never serialized
    },
  )
}
