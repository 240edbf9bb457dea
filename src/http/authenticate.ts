import type { FastifyReply, FastifyRequest } from 'fastify'
import { ForbiddenError, UnauthorizedError } from '../errors.js'
import type { AuthService } from '../services/auth.js'
import { isOperator, type User } from '../services/users.js'

declare module 'fastify' {
  interface FastifyRequest {
    user: User | null
    tokenExp: number
  }
}

export function bearerToken(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization
  if (!header) return undefined
  const [scheme, token] = header.split(' ')
  return scheme?.toLowerCase() === 'bearer' && token ? token : undefined
}

/**
 * onRequest hook for authenticated routes: sets `req.user` or answers 401. It runs before the body
 * is read or validated, so an anonymous client learns nothing from validation and costs no parsing.
 */
export const authenticate = (auth: AuthService) =>
  async function requireUser(req: FastifyRequest, _reply: FastifyReply): Promise<void> {
    const token = bearerToken(req)
    if (!token) throw new UnauthorizedError('missing bearer token')
    const { user, exp } = await auth.authenticate(token)
    req.user = user
    req.tokenExp = exp
  }

export function currentUser(req: FastifyRequest): User {
  if (!req.user) throw new UnauthorizedError()
  return req.user
}

/**
 * preHandler for `/api/v1/admin/...`: operators only (users.role = 'operator'; docs/moderation.md).
 * The one place that decides; anyone else signed in gets 403.
 */
export async function requireOperator(req: FastifyRequest): Promise<void> {
  if (!isOperator(currentUser(req))) throw new ForbiddenError('operators only')
}
