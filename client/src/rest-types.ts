import type { paths } from './generated/openapi.js'

/**
 * Types over the generated `paths` of the server's OpenAPI document. Everything is addressed by
 * path and method (never by component name), so renaming a schema or adding operation ids does
 * not break a caller.
 */
export type { paths }

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete'

/** The paths that have an operation for `M`. */
export type PathsWith<M extends HttpMethod> = {
  [P in keyof paths]: paths[P] extends Record<M, unknown> ? P : never
}[keyof paths]

export type Operation<P extends keyof paths, M extends HttpMethod> =
  paths[P] extends Record<M, infer O> ? O : never

type ParametersOf<O> = O extends { parameters: infer X } ? X : Record<never, never>

/** The path parameters of an operation (`{ id: string }`), or never. */
export type PathParams<O> = ParametersOf<O> extends { path: infer X } ? X : never
/** The querystring of an operation, or never. */
export type QueryParams<O> = ParametersOf<O> extends { query?: infer X } ? X : never
/** The JSON request body of an operation, or never. */
export type RequestBody<O> = O extends { requestBody?: { content: infer C } }
  ? C extends { 'application/json': infer B }
    ? B
    : never
  : never

type Ok = 200 | 201 | 202 | 204
/** The JSON body of any 2xx response of an operation (undefined for bodiless ones). */
export type ResponseBody<O> = O extends { responses: infer R }
  ? {
      [S in keyof R]: S extends Ok
        ? R[S] extends { content: { 'application/json': infer B } }
          ? B
          : undefined
        : never
    }[keyof R]
  : never

/** What `RestClient.request` accepts for one operation. */
export interface RequestOptions<O> {
  params?: PathParams<O>
  query?: Partial<QueryParams<O>>
  body?: RequestBody<O>
  /** Send the access token (default true); a 401 refreshes once and retries. */
  auth?: boolean
  signal?: AbortSignal
}

// Named shapes the SDK and apps use, taken from the operations (so they follow the document).
type Json<P extends keyof paths, M extends HttpMethod> = ResponseBody<Operation<P, M>>

/** A message as the server stores it (REST and WebSocket share the shape). */
export type Message = Json<'/api/v1/chat/conversations/{id}/messages', 'get'>['items'][number]
/** A conversation as listed for the caller (members, last message, unread count). */
export type Conversation = Json<'/api/v1/chat/conversations', 'get'>['items'][number]
export type ConversationMember = Conversation['members'][number]
/** The signed-in user. */
export type CurrentUser = Json<'/api/v1/auth/me', 'get'>
/** Someone found by a search. */
export type PublicUser = Json<'/api/v1/users', 'get'>['items'][number]
/** One page of history: items ascending by seq, keyset continuations. */
export type HistoryPage = Json<'/api/v1/chat/conversations/{id}/messages', 'get'>
export type RegisterInput = RequestBody<Operation<'/api/v1/auth/register', 'post'>>
export type CreateGroupInput = RequestBody<Operation<'/api/v1/chat/groups', 'post'>>
/** RFC 9457 problem details, as every error response carries. */
export interface Problem {
  type: string
  title: string
  status: number
  detail?: string
  instance?: string
  errors?: { path: string; message: string }[]
}
