import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { invalid, UnauthorizedError } from '../errors.js'
import type { Services } from '../services/index.js'
import { consume } from '../services/rate-limits.js'
import { normalizeEmail, toPrivateUser } from '../services/users.js'
import { authenticate, currentUser } from './authenticate.js'
import { PrivateUser, Problem, TokenPair } from './schemas.js'

const RefreshBody = Type.Object({ refresh_token: Type.String({ minLength: 1, maxLength: 512 }) })

export const authRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const { auth, config, limiter, loginThrottle } = services
  const limits = config.rateLimits

  app.post(
    '/auth/register',
    {
      schema: {
        tags: ['auth'],
        summary: 'Create an account and sign in',
        body: Type.Object(
          {
            email: Type.String({ minLength: 3, maxLength: 254 }),
            password: Type.String({ minLength: 1, maxLength: 1024 }),
            full_name: Type.String({ minLength: 1, maxLength: 100 }),
          },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Object({ user: PrivateUser, ...TokenPair.properties }),
          409: Problem,
          422: Problem,
          429: Problem,
        },
      },
    },
    async (req, reply) => {
      if (limits.enabled) {
        await consume(limiter, `register:ip:${req.ip}`, limits.registerMaxPerIp, limits.registerWindowSec)
      }
      const { user, tokens } = await auth.register({
        email: req.body.email,
        password: req.body.password,
        fullName: req.body.full_name,
      })
      return reply.code(201).send({ user: toPrivateUser(user), ...tokens })
    },
  )

  app.post(
    '/auth/login',
    {
      schema: {
        tags: ['auth'],
        summary: 'Sign in with the OAuth2 password form (username, password) or JSON {email, password}',
        consumes: ['application/json', 'application/x-www-form-urlencoded'],
        body: Type.Object({
          email: Type.Optional(Type.String({ maxLength: 254 })),
          username: Type.Optional(Type.String({ maxLength: 254 })),
          password: Type.String({ minLength: 1, maxLength: 1024 }),
        }),
        response: { 200: TokenPair, 401: Problem, 422: Problem, 429: Problem },
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
        tags: ['auth'],
        summary: 'Trade a refresh token for a new pair (the old one is spent; reuse revokes its family)',
        body: RefreshBody,
        response: { 200: TokenPair, 401: Problem, 422: Problem },
      },
    },
    async (req) => auth.refresh(req.body.refresh_token),
  )

  app.post(
    '/auth/logout',
    {
      schema: {
        tags: ['auth'],
        summary: 'Revoke a refresh token and every token rotated from the same login',
        body: RefreshBody,
        response: { 204: Type.Null(), 422: Problem },
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
        tags: ['auth'],
        summary: 'The signed-in user',
        security: [{ bearer: [] }],
        response: { 200: PrivateUser, 401: Problem },
      },
    },
    async (req) => toPrivateUser(currentUser(req)),
  )
}
