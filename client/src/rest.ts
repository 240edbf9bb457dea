import { ChatError, ProblemError } from './errors.js'
import type {
  HttpMethod,
  Operation,
  PathsWith,
  Problem,
  paths,
  RequestOptions,
  ResponseBody,
} from './rest-types.js'
import type { FetchLike, ResponseLike } from './types.js'

/** What the REST client needs from the session: a token, and one refresh after a 401. */
export interface TokenSource {
  /** A current access token (refreshed ahead of expiry), or undefined when signed out. */
  accessToken(): Promise<string | undefined>
  /** The token `used` was refused: refresh once (shared by every caller) and return the new one. */
  refreshAfter(used: string): Promise<string>
}

export interface RestConfig {
  baseUrl: string
  fetch: FetchLike
  timeoutMs: number
}

/**
 * A typed wrapper over every REST endpoint: `request('get', '/api/v1/chat/conversations', {query})`
 * checks the path, parameters and body against the generated OpenAPI types and returns the typed
 * response. A non-2xx answer throws a `ProblemError` (RFC 9457); a 401 refreshes the session once
 * (every concurrent 401 waits for the same refresh) and retries. It never retries anything else:
 * the outbox and the delivery layer decide when a retry is safe.
 */
export class RestClient {
  tokens: TokenSource | undefined

  constructor(private readonly config: RestConfig) {}

  async request<M extends HttpMethod, P extends PathsWith<M>>(
    method: M,
    path: P,
    options: RequestOptions<Operation<P, M>> = {},
  ): Promise<ResponseBody<Operation<P, M>>> {
    const url = this.url(path, options.params as Record<string, unknown> | undefined, options.query)
    const auth = options.auth !== false
    let token = auth ? await this.tokens?.accessToken() : undefined
    if (auth && token === undefined) throw new ChatError('session_expired', 'not signed in')
    let response = await this.send(method, url, options.body, token, options.signal)
    if (response.status === 401 && auth && token !== undefined && this.tokens) {
      token = await this.tokens.refreshAfter(token)
      response = await this.send(method, url, options.body, token, options.signal)
    }
    return (await readBody(response)) as ResponseBody<Operation<P, M>>
  }

  get<P extends PathsWith<'get'>>(path: P, options?: RequestOptions<Operation<P, 'get'>>) {
    return this.request('get', path, options)
  }
  post<P extends PathsWith<'post'>>(path: P, options?: RequestOptions<Operation<P, 'post'>>) {
    return this.request('post', path, options)
  }
  patch<P extends PathsWith<'patch'>>(path: P, options?: RequestOptions<Operation<P, 'patch'>>) {
    return this.request('patch', path, options)
  }
  delete<P extends PathsWith<'delete'>>(path: P, options?: RequestOptions<Operation<P, 'delete'>>) {
    return this.request('delete', path, options)
  }

  /** `{id}` segments filled in (encoded), and the defined query values appended. */
  url(path: keyof paths, params?: Record<string, unknown>, query?: object): string {
    const filled = String(path).replace(/\{(\w+)\}/g, (_, name: string) => {
      const value = params?.[name]
      if (value === undefined) throw new ChatError('validation_failed', `missing path parameter ${name}`)
      return encodeURIComponent(String(value))
    })
    const search = new URLSearchParams()
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) search.set(k, String(v))
    const qs = search.toString()
    return `${this.config.baseUrl.replace(/\/+$/, '')}${filled}${qs ? `?${qs}` : ''}`
  }

  private async send(
    method: string,
    url: string,
    body: unknown,
    token: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<ResponseLike> {
    const headers: Record<string, string> = { accept: 'application/json' }
    if (body !== undefined) headers['content-type'] = 'application/json'
    if (token !== undefined) headers.authorization = `Bearer ${token}`
    const timeout = new AbortController()
    const timer = setTimeout(() => timeout.abort(), this.config.timeoutMs)
    const onAbort = () => timeout.abort()
    signal?.addEventListener('abort', onAbort)
    try {
      return await this.config.fetch(url, {
        method: method.toUpperCase(),
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: timeout.signal,
      })
    } catch (err) {
      if (signal?.aborted) throw new ChatError('aborted', 'request aborted')
      if (timeout.signal.aborted) throw new ChatError('timeout', `no answer from ${method} ${url}`)
      throw new ChatError('network', `${method.toUpperCase()} ${url} failed: ${describe(err)}`)
    } finally {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    }
  }
}

/** The JSON body of a 2xx response; a ProblemError for anything else. */
async function readBody(response: ResponseLike): Promise<unknown> {
  let text: string
  try {
    text = await response.text()
  } catch (err) {
    // The connection broke while the body was read: the outcome is unknown, like a network error.
    throw new ChatError('network', `response body lost: ${describe(err)}`)
  }
  if (response.ok) {
    if (text === '') return undefined
    try {
      return JSON.parse(text)
    } catch {
      throw new ChatError('network', 'response body is not JSON (truncated?)')
    }
  }
  throw new ProblemError(toProblem(response.status, text), retryAfter(response))
}

function toProblem(status: number, text: string): Problem {
  try {
    const value = JSON.parse(text) as Partial<Problem>
    if (value && typeof value.type === 'string' && typeof value.title === 'string')
      return { ...value, status } as Problem
  } catch {
    // Not a problem document (a proxy's HTML page): described from the status below.
  }
  return { type: 'about:blank', title: `HTTP ${status}`, status, detail: text.slice(0, 200) || undefined }
}

function retryAfter(response: ResponseLike): number | undefined {
  const value = response.headers.get('retry-after')
  const seconds = value === null ? Number.NaN : Number(value)
  return Number.isFinite(seconds) ? seconds : undefined
}

export function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause
    return cause instanceof Error ? `${err.message} (${cause.message})` : err.message
  }
  return String(err)
}
