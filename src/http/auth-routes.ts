import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { invalid, UnauthorizedError } from '../errors.js'
import type { Services } from '../services/index.js'
import { consume } from '../services/rate-limits.js'
import { normalizeEmail, toPrivateUser } from '../services/users.js'
import { authenticate, currentUser } from './authenticate.js'
import { sendQuota } from './problem.js'
import { errors, PrivateUser, RATE_LIMIT_HEADERS, Registration, rateLimited, TokenPair } from './schemas.js'

const RefreshBody = Type.Object({ refresh_token: Type.String({ minLength: 1, maxLength: 512 }) })
const tags = ['auth']

export const authRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const { auth, config, limiter, loginThrottle } = services
  const limits = config.rateLimits

  app.post(
    '/auth/register',
    {
      schema: {
        operationId: 'register',
        tags,
        summary: 'Create an account and sign in',
        description:
          'Creates the account and returns it with a first token pair. The email is compared ' +
          'case-insensitively (409 when taken). Limited per client address (REGISTER_MAX_PER_IP in ' +
          'REGISTER_WINDOW_SEC), announced in the RateLimit-* headers.',
        body: Type.Object(
          {
            email: Type.String({ minLength: 3, maxLength: 254 }),
            password: Type.String({ minLength: 1, maxLength: 1024 }),
            full_name: Type.String({ minLength: 1, maxLength: 100 }),
          },
          { additionalProperties: false },
        ),
        response: {
          201: {
            description: 'The account and its first tokens',
            headers: RATE_LIMIT_HEADERS,
            content: { 'application/json': { schema: Registration } },
          },
          ...errors(409, 503),
          ...rateLimited(),
        },
      },
    },
    async (req, reply) => {
      const quota = limits.enabled
        ? await consume(limiter, `register:ip:${req.ip}`, limits.registerMaxPerIp, limits.registerWindowSec)
        : undefined
      const { user, tokens } = await auth.register({
        email: req.body.email,
        password: req.body.password,
        fullName: req.body.full_name,
      })
      // Announced with the success (and the 429) only: the documented responses that carry them.
      if (quota) sendQuota(reply, quota)
      return reply.code(201).send({ user: toPrivateUser(user), ...tokens })
    },
  )

  app.post(
    '/auth/login',
    {
      schema: {
        operationId: 'login',
        tags,
        summary: 'Sign in with email and password',
        description:
          'Takes the OAuth2 password form (`username`, `password`) or JSON `{email, password}`; one of ' +
          '`email`/`username` is required (422 without). Failed attempts slow the address they come from ' +
          '(429 with Retry-After, growing) and never lock the account: docs/security.md.',
        consumes: ['application/json', 'application/x-www-form-urlencoded'],
        body: Type.Object({
          email: Type.Optional(Type.String({ maxLength: 254 })),
          username: Type.Optional(Type.String({ maxLength: 254 })),
          password: Type.String({ minLength: 1, maxLength: 1024 }),
        }),
        response: { 200: TokenPair, ...errors(401, 503), ...rateLimited() },
      },
    },
    async (req) => {
      const given = req.body.email ?? req.body.username
      if (given === undefined) {
        throw invalid('email', 'email (or the form field username) is required')
      }
      const email = normalizeEmail(given)
      if (!limits.enabled) return auth.login(email, req.body.password)
      const attempt = await loginThrottle.admit(email, req.ip)
      try {
        const tokens = await auth.login(email, req.body.password)
        await attempt.succeeded()
        return tokens
      } catch (err) {
        // A wrong password stays counted; anything else did not test the password.
        if (!(err instanceof UnauthorizedError)) await attempt.notTried()
        throw err
      }
    },
  )

  app.post(
    '/auth/refresh',
    {
      schema: {
        operationId: 'refreshToken',
        tags,
        summary: 'Trade a refresh token for a new token pair',
        description:
          'The refresh token is spent: a second use answers 401 and revokes every token rotated from ' +
          'the same login (reuse detection). Also takes the OAuth2 form `grant_type=refresh_token&refresh_token=…`.',
        consumes: ['application/json', 'application/x-www-form-urlencoded'],
        body: RefreshBody,
        response: { 200: TokenPair, ...errors(401, 503) },
      },
    },
    async (req) => auth.refresh(req.body.refresh_token),
  )

  app.post(
    '/auth/logout',
    {
      schema: {
        operationId: 'logout',
        tags,
        summary: 'Sign out: revoke a refresh token',
        description:
          'Revokes the refresh token and every token rotated from the same login. Always 204, ' +
          'also for an unknown or spent token (nothing to learn from it). Access tokens stay valid until they expire.',
        body: RefreshBody,
        response: { 204: Type.Null({ description: 'Signed out' }), ...errors(503) },
      },
    },
    async (req, reply) => {
      await auth.logout(req.body.refresh_token)
      return reply.code(204).send(null)
    },
  )

  app.get(
    '/auth/me',
    {
      onRequest: authenticate(auth),
      schema: {
        operationId: 'getMe',
        tags,
        summary: 'The signed-in user',
        description: 'The account the bearer token belongs to, email and flags included.',
        security: [{ bearer: [] }],
        response: { 200: PrivateUser, ...errors(401, 503) },
      },
    },
    async (req) => toPrivateUser(currentUser(req)),
  )
}
