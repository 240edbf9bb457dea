import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestApp, type TestApp, type TestUser } from '../helpers/app.js'
import { type Frame, restSend, signAccessToken, TestSocket } from '../helpers/ws-client.js'
import { asyncApi, buildWorld, databaseDigest, openApi, operations, type World } from './fixtures.js'

/**
 * Who may call what. Every operation of the OpenAPI document and every channel of the AsyncAPI
 * document must have a line here: a route added without one fails the matrix, so none can
 * escape it by accident.
 */
type Access =
  /** Open to anyone; `why` says why that is safe. */
  | { kind: 'public'; why: string }
  /** Any signed-in user, acting on their own account or on public data only. */
  | {
      kind: 'signed-in'
      why: string
      query?: (w: World) => string
      /** What the caller's own data may name (the export lists the removed member's own message in the group). */
      mayName?: (w: World) => string[]
    }
  /** Aimed at one conversation or message: a non-member gets 404 (existence does not leak). */
  | { kind: 'member'; body?: (w: World) => object; plainMember?: 403 }
  /** Operators only (the admin API and changing other accounts): anyone else signed in gets 403. */
  | { kind: 'operator'; body?: (w: World) => object; query?: (w: World) => string }

const ROUTES: Record<string, Access> = {
  'GET /health': { kind: 'public', why: 'liveness probe; says only "ok"' },
  'GET /ready': { kind: 'public', why: 'readiness probe; says only which backing service is up' },
  'GET /metrics': {
    kind: 'public',
    why: 'Prometheus scrape; counters and latencies, no user data (METRICS_TOKEN, when set, requires a bearer token)',
  },
  'POST /api/v1/auth/register': { kind: 'public', why: 'creates an account (rate-limited per IP)' },
  'POST /api/v1/auth/login': { kind: 'public', why: 'the password is the credential (throttled)' },
  'POST /api/v1/auth/refresh': { kind: 'public', why: 'the refresh token is the credential' },
  'POST /api/v1/auth/logout': { kind: 'public', why: 'the refresh token is the credential' },
  'GET /api/v1/auth/me': { kind: 'signed-in', why: "the caller's own account" },
  'GET /api/v1/users': { kind: 'signed-in', why: 'public profiles, to find someone to talk to' },
  'GET /api/v1/users/{id}': { kind: 'signed-in', why: 'a public profile' },
  'PATCH /api/v1/users/me': { kind: 'signed-in', why: "the caller's own account" },
  'DELETE /api/v1/users/me': { kind: 'signed-in', why: "the caller's own account" },
  'PATCH /api/v1/users/{id}': { kind: 'operator', body: () => ({ full_name: 'taken over' }) },
  'DELETE /api/v1/users/{id}': { kind: 'operator' },
  'POST /api/v1/chat/conversations': { kind: 'signed-in', why: "opens the caller's own direct chat" },
  'GET /api/v1/chat/conversations': { kind: 'signed-in', why: "the caller's own conversations" },
  'POST /api/v1/chat/groups': { kind: 'signed-in', why: 'creates a group the caller owns' },
  'POST /api/v1/chat/ws-ticket': { kind: 'signed-in', why: "a ticket for the caller's own socket" },
  'GET /api/v1/chat/conversations/{id}': { kind: 'member' },
  'PATCH /api/v1/chat/conversations/{id}': {
    kind: 'member',
    body: () => ({ title: 'taken over' }),
    plainMember: 403,
  },
  'POST /api/v1/chat/conversations/{id}/members': {
    kind: 'member',
    body: (w) => ({ user_id: w.stranger.id }),
    plainMember: 403,
  },
  'DELETE /api/v1/chat/conversations/{id}/members/{user_id}': { kind: 'member', plainMember: 403 },
  'PATCH /api/v1/chat/conversations/{id}/members/{user_id}': {
    kind: 'member',
    body: () => ({ role: 'admin' }),
    plainMember: 403,
  },
  'GET /api/v1/chat/conversations/{id}/messages': { kind: 'member' },
  'POST /api/v1/chat/conversations/{id}/messages': {
    kind: 'member',
    body: () => ({ content: 'let me in', client_msg_id: 'intruder-1' }),
  },
  'POST /api/v1/chat/conversations/{id}/read': { kind: 'member', body: () => ({ seq: 1 }) },
  'PATCH /api/v1/chat/messages/{id}': {
    kind: 'member',
    body: () => ({ content: 'edited by an intruder' }),
    plainMember: 403,
  },
  'DELETE /api/v1/chat/messages/{id}': { kind: 'member', plainMember: 403 },
  'POST /api/v1/chat/conversations/{id}/attachments': {
    kind: 'member',
    body: () => ({ filename: 'intruder.txt', content_type: 'text/plain', size: 10 }),
  },
  'GET /api/v1/chat/attachments/{id}': { kind: 'member' },
  'PUT /api/v1/storage/object': {
    kind: 'public',
    why: 'local storage upload URL: its HMAC signature (key, size, expiry) is the credential, as with S3',
  },
  'GET /api/v1/storage/object': {
    kind: 'public',
    why: 'local storage download URL: its HMAC signature (key, expiry) is the credential, as with S3',
  },
  'GET /api/v1/chat/messages/{id}/replies': { kind: 'member' },
  'PUT /api/v1/chat/messages/{id}/reactions/{emoji}': { kind: 'member' },
  'DELETE /api/v1/chat/messages/{id}/reactions/{emoji}': { kind: 'member' },
  'GET /api/v1/chat/mentions': {
    kind: 'signed-in',
    why: 'messages mentioning the caller, in their own conversations',
  },
  'GET /api/v1/chat/search': {
    kind: 'signed-in',
    why: "searches only the caller's own conversations",
    // The group's secret itself: a stranger or a removed member must find nothing of it.
    query: (w) => `?q=${encodeURIComponent(w.secret)}`,
  },
  'GET /api/v1/users/me/blocks': { kind: 'signed-in', why: "the caller's own block list" },
  'PUT /api/v1/users/me/blocks/{user_id}': { kind: 'signed-in', why: "the caller's own block list" },
  'DELETE /api/v1/users/me/blocks/{user_id}': { kind: 'signed-in', why: "the caller's own block list" },
  'GET /api/v1/users/me/export': {
    kind: 'signed-in',
    why: "the caller's own data only: account, memberships, blocks, the messages they sent",
    mayName: (w) => [w.group],
  },
  'PUT /api/v1/chat/messages/{id}/pin': { kind: 'member', plainMember: 403 },
  'DELETE /api/v1/chat/messages/{id}/pin': { kind: 'member', plainMember: 403 },
  'GET /api/v1/chat/conversations/{id}/pins': { kind: 'member' },
  // Moderation (issue 15). A plain member may report; only group owners and admins ban.
  'POST /api/v1/chat/messages/{id}/report': { kind: 'member', body: () => ({ reason: 'spam' }) },
  'POST /api/v1/chat/conversations/{id}/bans/{user_id}': { kind: 'member', plainMember: 403 },
  'DELETE /api/v1/chat/conversations/{id}/bans/{user_id}': { kind: 'member', plainMember: 403 },
  'GET /api/v1/chat/conversations/{id}/bans': { kind: 'member', plainMember: 403 },
  'GET /api/v1/admin/reports': { kind: 'operator' },
  'POST /api/v1/admin/reports/{id}/resolve': { kind: 'operator', body: () => ({ action: 'dismiss' }) },
  'GET /api/v1/admin/users': { kind: 'operator' },
  'PUT /api/v1/admin/users/{id}/suspension': { kind: 'operator' },
  'DELETE /api/v1/admin/users/{id}/suspension': { kind: 'operator' },
  'DELETE /api/v1/admin/messages/{id}': { kind: 'operator' },
  'GET /api/v1/admin/audit-log': { kind: 'operator' },
  'PUT /api/v1/chat/conversations/{id}/retention': {
    kind: 'member',
    body: () => ({ days: 1 }),
    plainMember: 403,
  },
  'POST /api/v1/admin/webhooks': { kind: 'operator', body: () => ({ url: 'https://hooks.example.com/in' }) },
  'GET /api/v1/admin/webhooks': { kind: 'operator' },
  'DELETE /api/v1/admin/webhooks/{id}': { kind: 'operator' },
  'POST /api/v1/admin/webhooks/{id}/test': { kind: 'operator' },
  'PUT /api/v1/chat/conversations/{id}/mute': { kind: 'member', body: () => ({}) },
  'DELETE /api/v1/chat/conversations/{id}/mute': { kind: 'member' },
  'GET /api/v1/push/vapid-public-key': { kind: 'signed-in', why: 'the public half of the VAPID key pair' },
  'POST /api/v1/users/me/push-subscriptions': {
    kind: 'signed-in',
    why: "registers the caller's own browser",
  },
  'GET /api/v1/users/me/push-subscriptions': { kind: 'signed-in', why: "the caller's own browsers" },
  'DELETE /api/v1/users/me/push-subscriptions/{id}': {
    kind: 'signed-in',
    why: "the caller's own browsers (another user's id is a 404: test/integration/push-subscriptions.test.ts)",
  },
}

/** Channels of docs/asyncapi.yaml by address. */
const SOCKETS: Record<string, 'signed-in' | 'member'> = {
  '/api/v1/chat/ws': 'signed-in',
  '/api/v1/chat/ws/conversations/{conversation_id}': 'member',
}

/** Each client frame type aimed at the group, and the error code an outsider must get. */
const FRAMES: Record<string, ((w: World) => { frame: object; code: string }) | 'no target'> = {
  'message.send': (w) => ({
    frame: { type: 'message.send', conversation_id: w.group, content: 'let me in', client_msg_id: 'ws-1' },
    code: 'not_found',
  }),
  'message.edit': (w) => ({
    frame: { type: 'message.edit', message_id: w.message, content: 'edited by an intruder' },
    code: 'not_found',
  }),
  'message.delete': (w) => ({ frame: { type: 'message.delete', message_id: w.message }, code: 'not_found' }),
  'reaction.add': (w) => ({
    frame: { type: 'reaction.add', message_id: w.message, emoji: '👍' },
    code: 'not_found',
  }),
  'reaction.remove': (w) => ({
    frame: { type: 'reaction.remove', message_id: w.message, emoji: '👍' },
    code: 'not_found',
  }),
  typing: (w) => ({ frame: { type: 'typing', conversation_id: w.group, state: 'start' }, code: 'not_found' }),
  read: (w) => ({ frame: { type: 'read', conversation_id: w.group, seq: 1 }, code: 'not_found' }),
  sync: (w) => ({ frame: { type: 'sync', cursors: { [w.group]: 0 } }, code: 'not_found' }),
  // Taking over a socket with someone else's token.
  auth: (w) => ({ frame: { type: 'auth', access_token: w.owner.token }, code: 'unauthorized' }),
  ping: 'no target',
}

describe('authorization matrix: every route and socket of the API documents', () => {
  let t: TestApp
  let w: World
  const sockets: TestSocket[] = []

  beforeAll(async () => {
    t = await startTestApp()
    await t.listen()
    w = await buildWorld(t)
  })
  afterAll(async () => {
    for (const s of sockets) s.close()
    await t?.close()
  })

  /** Fills path parameters with the ids of real objects, so only authorization can refuse. */
  const fill = (path: string) =>
    path
      .replace('/messages/{id}', `/messages/${w.message}`)
      .replace('/attachments/{id}', `/attachments/${w.attachment}`)
      .replace('{emoji}', encodeURIComponent('👍'))
      .replace('/users/{id}', `/users/${w.member.id}`)
      .replace('{id}', w.group)
      .replace('{user_id}', w.other.id)
      .replace('{conversation_id}', w.group)

  // Every route adds cells, and each cell hashes the database twice: on a loaded machine the whole
  // matrix takes well over the default 30 s (hence its own timeout).
  it('refuses everyone without access with 401/403/404, changes nothing, and leaks nothing', async () => {
    const failures: string[] = []
    const doc = await openApi(t.app)
    const api = asyncApi()
    const expired = await signAccessToken(w.owner.id, -60)
    const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
    const others = (caller: TestUser) =>
      [w.owner, w.member, w.other, w.removed, w.stranger].filter((u) => u !== caller).map((u) => u.email)
    const leaks = (text: string, caller: TestUser, allowed: string[] = []) =>
      [w.secret, w.group, w.message, ...others(caller)].filter(
        (s) => text.includes(s) && !allowed.includes(s),
      )

    // Every documented route is in the table, and the table names no route that is gone.
    const ops = operations(doc, { head: true })
    const accessOf = (key: string) => ROUTES[key.replace(/^HEAD /, 'GET ')]
    for (const op of ops) if (!accessOf(op.key)) failures.push(`${op.key}: not in the matrix; classify it`)
    const documented = new Set(ops.map((o) => o.key))
    for (const key of Object.keys(ROUTES)) if (!documented.has(key)) failures.push(`${key}: no longer exists`)

    for (const op of ops) {
      const access = accessOf(op.key)
      if (!access) continue
      if (access.kind === 'public') {
        // `{}` among the alternatives: credentials are optional (METRICS_TOKEN on /metrics); a
        // presigned URL (signedUrl) carries its own credential and never a user's token.
        const optional = op.security?.some((s) => Object.keys(s as object).length === 0)
        const signed = op.security?.every((s) => Object.keys(s as object).join() === 'signedUrl')
        if (op.security && !optional && !signed)
          failures.push(`${op.key}: listed public but documented as secured`)
        continue
      }
      if (!op.security) failures.push(`${op.key}: protected but documents no security requirement`)
      const url = fill(op.path) + ('query' in access && access.query ? access.query(w) : '')
      if (url.includes('{')) failures.push(`${op.key}: unknown path parameter; extend fill()`)
      const body = 'body' in access ? access.body?.(w) : undefined
      type Cell = { who: string; headers: Record<string, string>; status: number; caller?: TestUser }
      const cells: Cell[] = [
        { who: 'no token', headers: {}, status: 401 },
        { who: 'expired token', headers: bearer(expired), status: 401 },
      ]
      if (access.kind === 'member') {
        cells.push({ who: 'stranger', headers: w.stranger.auth, status: 404 })
        cells.push({ who: 'removed member', headers: w.removed.auth, status: 404 })
        if (access.plainMember) cells.push({ who: 'plain member', headers: w.member.auth, status: 403 })
      } else if (access.kind === 'operator') {
        cells.push({ who: 'stranger', headers: w.stranger.auth, status: 403 })
        cells.push({ who: 'removed member', headers: w.removed.auth, status: 403 })
        cells.push({ who: 'group owner', headers: w.owner.auth, status: 403 })
      } else if (op.method === 'GET' || op.method === 'HEAD') {
        // Their own data or public data: allowed, but nothing of the group may show.
        cells.push({ who: 'stranger', headers: w.stranger.auth, status: 200, caller: w.stranger })
        cells.push({ who: 'removed member', headers: w.removed.auth, status: 200, caller: w.removed })
      }
      for (const cell of cells) {
        const before = await databaseDigest(t.database)
        const res = await t.app.inject({
          method: op.method as 'GET',
          url,
          headers: cell.headers,
          ...(body ? { payload: body } : {}),
        })
        const after = await databaseDigest(t.database)
        const where = `${op.key} as ${cell.who}`
        if (res.statusCode !== cell.status) {
          failures.push(`${where}: expected ${cell.status}, got ${res.statusCode} ${res.body.slice(0, 200)}`)
        }
        if (JSON.stringify(after) !== JSON.stringify(before)) {
          failures.push(
            `${where}: the database changed: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`,
          )
        }
        if (cell.status >= 400 && op.method !== 'HEAD') {
          if (!String(res.headers['content-type']).startsWith('application/problem+json')) {
            failures.push(`${where}: refusal is not problem+json`)
          }
          if (cell.status === 401 && res.headers['www-authenticate'] !== 'Bearer') {
            failures.push(`${where}: 401 without WWW-Authenticate: Bearer`)
          }
        }
        if (cell.caller) {
          const own = cell.caller === w.removed && 'mayName' in access ? (access.mayName?.(w) ?? []) : []
          const leaked = leaks(res.body, cell.caller, own)
          if (leaked.length > 0) failures.push(`${where}: response leaks ${leaked.join(', ')}`)
        }
      }
    }

    // Sockets: every channel of the AsyncAPI document.
    const own: TestSocket[] = []
    for (const channel of api.channels) {
      const access = SOCKETS[channel.address]
      if (!access) {
        failures.push(`socket ${channel.address}: not in the matrix; classify it`)
        continue
      }
      const url = `${t.url}${fill(channel.address)}`
      const cells: {
        who: string
        opts: Parameters<typeof TestSocket.open>[1]
        url?: string
        status: number
      }[] = [
        { who: 'no token', opts: {}, status: 401 },
        { who: 'expired token', opts: { token: expired }, status: 401 },
        { who: 'expired token as subprotocol', opts: { protocols: ['bearer', expired] }, status: 401 },
        { who: 'unknown ticket', opts: {}, url: `${url}?ticket=${'A'.repeat(32)}`, status: 401 },
      ]
      if (access === 'member') {
        cells.push({ who: 'stranger', opts: { token: w.stranger.token }, status: 404 })
        cells.push({ who: 'removed member', opts: { token: w.removed.token }, status: 404 })
      }
      for (const cell of cells) {
        const before = await databaseDigest(t.database)
        const where = `socket ${channel.address} as ${cell.who}`
        try {
          const { status } = await TestSocket.refusal(cell.url ?? url, cell.opts)
          if (status !== cell.status) failures.push(`${where}: expected ${cell.status}, got ${status}`)
        } catch (err) {
          failures.push(`${where}: ${String(err)}`)
        }
        const after = await databaseDigest(t.database)
        if (JSON.stringify(after) !== JSON.stringify(before)) failures.push(`${where}: the database changed`)
      }
      if (access === 'signed-in') {
        for (const u of [w.stranger, w.removed]) {
          const s = await TestSocket.open(url, { token: u.token })
          sockets.push(s)
          own.push(s)
          await s.waitFor((f) => f.type === 'ready')
        }
      }
    }

    // Outsiders on their own sockets: every frame aimed at the group is refused.
    for (const type of api.clientFrames.keys()) {
      if (!(type in FRAMES)) failures.push(`frame ${type}: not in the matrix; classify it`)
    }
    const before = await databaseDigest(t.database)
    for (const [i, s] of own.entries()) {
      for (const [type, make] of Object.entries(FRAMES)) {
        if (make === 'no target') continue
        const { frame, code } = make(w)
        const from = s.frames.length
        s.send(frame)
        const where = `frame ${type} from ${i === 0 ? 'stranger' : 'removed member'}`
        if (type === 'sync' && i === 1) {
          // A removed member may resume what reached them as a member (up to the removal), then
          // hears the removal; nothing after it (checked with the live traffic below).
          const removed = await s.waitFor((f) => f.type === 'member.removed', { from }).catch(() => undefined)
          if (removed?.conversation_id !== w.group) failures.push(`${where}: expected member.removed`)
          continue
        }
        const answer = await s.waitFor((f) => f.type === 'error', { from }).catch(() => undefined)
        if (answer?.code !== code)
          failures.push(`${where}: expected error ${code}, got ${JSON.stringify(answer)}`)
      }
    }
    const after = await databaseDigest(t.database)
    if (JSON.stringify(after) !== JSON.stringify(before))
      failures.push('frames from outsiders changed the database')

    // Live traffic of the group reaches a member's socket, and not the outsiders'.
    const watcher = await TestSocket.open(`${t.url}/api/v1/chat/ws`, { token: w.member.token })
    sockets.push(watcher)
    await watcher.waitFor((f) => f.type === 'ready')
    const sent = await restSend(t.app, w.owner, w.group, `${w.secret} live`)
    await watcher.waitFor((f) => f.type === 'message.new' && (f.message as { id: string }).id === sent.id)
    for (const [i, s] of own.entries()) {
      await s.settle()
      // Error frames may echo the ids the outsider sent itself; anything else must not name the group
      // (the removed member's own history up to its removal, and that removal, excepted).
      const before = (f: Frame) =>
        i === 1 &&
        ((f.type === 'message.new' && (f.message as { seq: number }).seq <= w.removedAt) ||
          f.type === 'member.removed')
      const seen = JSON.stringify(s.frames.filter((f) => f.type !== 'error' && !before(f)))
      if (seen.includes(w.group) || seen.includes(w.secret) || seen.includes(`${w.secret} live`)) {
        failures.push(`${i === 0 ? 'stranger' : 'removed member'}'s socket received the group's traffic`)
      }
      if (s.closed) failures.push(`${i === 0 ? 'stranger' : 'removed member'}'s socket was closed`)
    }

    expect(failures).toEqual([])
  }, 120_000)
})
