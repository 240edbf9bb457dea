import type { AuthApi } from './auth.js'
import { FatalDialError } from './connection.js'
import { ChatError } from './errors.js'
import type { RestClient } from './rest.js'
import type { FetchLike, WebSocketConstructor } from './types.js'

/**
 * The user socket's URL for the next attempt. Browsers cannot set headers on a WebSocket, so by
 * default a single-use ticket is fetched (`POST /ws-ticket`) and passed as `?ticket=`; with
 * `protocol` the token rides in the `bearer, <token>` subprotocol pair. `resume=true` makes the
 * server hold messages until our first frame, the `sync`.
 */
export async function dialUserSocket(
  baseUrl: string,
  socketAuth: 'ticket' | 'protocol',
  auth: AuthApi,
  rest: RestClient,
): Promise<{ url: string; protocols?: string[] }> {
  const base = baseUrl.replace(/\/+$/, '').replace(/^http/, 'ws')
  const url = `${base}/api/v1/chat/ws?resume=true`
  try {
    if (socketAuth === 'protocol') {
      const token = await auth.accessToken()
      if (!token) throw new FatalDialError('session_expired', 'not signed in')
      return { url, protocols: ['bearer', token] }
    }
    const { ticket } = await rest.post('/api/v1/chat/ws-ticket')
    return { url: `${url}&ticket=${encodeURIComponent(ticket)}` }
  } catch (err) {
    if (err instanceof ChatError && err.code === 'session_expired')
      throw new FatalDialError(err.code, err.message)
    throw err
  }
}

/** The WebSocket to use: the given one, the global one, else the `ws` package (Node 20). */
export async function webSocketClass(given: WebSocketConstructor | undefined): Promise<WebSocketConstructor> {
  if (given) return given
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
  if (global) return global
  // Node 20 has no WebSocket client: `ws` is an optional peer dependency. The name is a variable
  // so that browser bundlers do not try to include it.
  const name = 'ws'
  const mod = (await import(/* @vite-ignore */ name)) as {
    WebSocket?: WebSocketConstructor
    default?: WebSocketConstructor
  }
  const Ctor = mod.WebSocket ?? mod.default
  if (!Ctor)
    throw new FatalDialError('unsupported', 'no WebSocket here: install `ws` or pass options.WebSocket')
  return Ctor
}

export function defaultFetch(): FetchLike {
  const f = (globalThis as { fetch?: FetchLike }).fetch
  if (!f) return () => Promise.reject(new ChatError('unsupported', 'no fetch here: pass options.fetch'))
  return (url, init) => f.call(globalThis, url, init)
}
