import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import fastifyStatic from '@fastify/static'
import type { FastifyPluginAsync } from 'fastify'

/**
 * The app's own policy, stricter than the one helmet gives Swagger UI: the built client has no
 * inline script or style (Vite emits files), talks only to this origin (REST and the WebSocket:
 * CSP 3's 'self' covers ws:/wss: on the same host), and is never framed.
 */
export const WEB_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ')

/**
 * Serves the web client (web/dist, built by `npm run build`) at `/`. One route per file, found
 * when the server starts (no catch-all: an unknown path is still the API's problem+json 404), and
 * hidden from the OpenAPI document. Without a build the server starts all the same and says so
 * once. Hashed assets are cached for good; index.html is revalidated so a deploy shows at once.
 */
export const webRoutes: FastifyPluginAsync<{ root: string }> = async (app, opts) => {
  const root = resolve(opts.root)
  if (!existsSync(join(root, 'index.html'))) {
    app.log.info({ webDir: root }, 'web client not built (no index.html in WEB_DIR): serving the API only')
    return
  }
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('content-security-policy', WEB_CSP)
    return payload
  })
  await app.register(fastifyStatic, {
    root,
    wildcard: false,
    schemaHide: true,
    decorateReply: false,
    index: ['index.html'],
    setHeaders: (reply, path) => {
      const immutable = path.includes(`${join(root, 'assets')}/`)
      reply.header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
    },
  })
}
