import { ChatClient, type ChatClientOptions, type ChatEvents } from '@chat-api/client'

let counter = 0

/** A ChatClient for a fresh account on the server at `baseUrl` (signed up, not connected). */
export async function signUp(
  baseUrl: string,
  name: string,
  options: Partial<ChatClientOptions> = {},
): Promise<ChatClient> {
  counter++
  const client = new ChatClient({ baseUrl, ...options })
  await client.auth.register({
    email: `${name.toLowerCase()}.${process.pid}.${Date.now()}.${counter}@example.com`,
    password: 'Sup3r-secret!',
    full_name: `${name} ${counter}`,
  })
  return client
}

/** Resolves with the first `event` matching `pred` (rejects after `ms`, naming what it waited for). */
export function nextEvent<K extends keyof ChatEvents>(
  client: ChatClient,
  event: K,
  pred: (payload: ChatEvents[K]) => boolean = () => true,
  ms = 10_000,
): Promise<ChatEvents[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off()
      reject(new Error(`no ${String(event)} event within ${ms} ms`))
    }, ms)
    const off = client.on(event, (payload) => {
      if (!pred(payload)) return
      clearTimeout(timer)
      off()
      resolve(payload)
    })
  })
}

/** Resolves once `check()` is true, re-checked on every event of the client (rejects after `ms`). */
export function until(client: ChatClient, check: () => boolean, what: string, ms = 15_000): Promise<void> {
  if (check()) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const offs: (() => void)[] = []
    const done = (err?: Error) => {
      clearTimeout(timer)
      for (const off of offs) off()
      if (err) reject(err)
      else resolve()
    }
    const timer = setTimeout(() => done(new Error(`timed out waiting for ${what}`)), ms)
    const events: (keyof ChatEvents)[] = [
      'message',
      'outbox',
      'state',
      'conversations',
      'resynced',
      'read',
      'message.changed',
      'changes.synced',
    ]
    for (const e of events) offs.push(client.on(e, () => check() && done()))
  })
}
