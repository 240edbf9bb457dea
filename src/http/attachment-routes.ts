import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { Services } from '../services/index.js'
import { authenticate, currentUser } from './authenticate.js'
import { authErrors, errors, IdParams } from './schemas.js'

/** The hard ceiling of ATTACHMENT_MAX_BYTES; the configured limit is checked by the service (413). */
const SIZE_CEILING = 5 * 1024 ** 3

const NewAttachment = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    upload: Type.Object({
      url: Type.String({ description: 'absolute (S3) or relative to this API’s origin (local storage)' }),
      method: Type.Literal('PUT'),
      headers: Type.Record(Type.String(), Type.String(), { description: 'send these headers with the file' }),
    }),
    expires_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'NewAttachment' },
)

/** Attachments: ask for an upload URL, then download through a membership check. */
export const attachmentRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (
  app,
  { services },
) => {
  const { attachments } = services
  app.addHook('onRequest', authenticate(services.auth))
  const common = { tags: ['attachments'], security: [{ bearer: [] }] }

  app.post(
    '/conversations/:id/attachments',
    {
      schema: {
        ...common,
        operationId: 'createAttachment',
        summary: 'Ask for a URL to upload a file to (members)',
        description:
          'Checks the size (ATTACHMENT_MAX_BYTES, 413), the type (ATTACHMENT_CONTENT_TYPES, 415), the ' +
          "caller's storage quota (413 quota_exceeded) and rate (429), then answers where to PUT the file. " +
          'Send the message with `attachment_ids` after the upload; unsent attachments are deleted after ' +
          'ATTACHMENT_UNSENT_TTL_SEC.',
        params: IdParams,
        body: Type.Object(
          {
            filename: Type.String({ minLength: 1, maxLength: 1024 }),
            content_type: Type.String({ minLength: 1, maxLength: 255 }),
            size: Type.Integer({ minimum: 1, maximum: SIZE_CEILING, format: 'int64' }),
          },
          { additionalProperties: false },
        ),
        response: { 201: NewAttachment, ...errors(404, 413, 415, 429), ...authErrors },
      },
    },
    async (req, reply) =>
      reply.code(201).send(await attachments.create(currentUser(req).id, req.params.id, req.body)),
  )

  app.get(
    '/attachments/:id',
    {
      schema: {
        ...common,
        operationId: 'downloadAttachment',
        summary: 'Download an attachment: 302 to a URL valid for a few minutes',
        description:
          'For whoever may read its message now (a current member; 404 otherwise, and for a deleted ' +
          'message). Images of safe types are served inline, everything else as a download. ' +
          '`variant=thumbnail`: a WebP at most 320 px on its longest side (images only; 404 otherwise).',
        params: IdParams,
        querystring: Type.Object({
          variant: Type.Union([Type.Literal('original'), Type.Literal('thumbnail')], { default: 'original' }),
        }),
        response: {
          302: Type.Null({ description: 'Location: the presigned download URL' }),
          ...errors(404),
          ...authErrors,
        },
      },
    },
    async (req, reply) => {
      const url = await attachments.downloadUrl(currentUser(req).id, req.params.id, req.query.variant)
      // redirect() sends no body, as the document says (a 302 without content).
      return reply
        .header('cache-control', 'private, no-store')
        .header('x-content-type-options', 'nosniff')
        .redirect(url, 302)
    },
  )
}
