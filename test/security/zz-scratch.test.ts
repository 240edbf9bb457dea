import fc from 'fast-check'
import pino from 'pino'
import { it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { MemoryBroker } from '../../src/broker/memory.js'
import { openTestDatabase, registerUser, testConfig } from '../helpers/app.js'
import { hostileBody, hostileString, invalidBody, toJson } from './arbitraries.js'
import { buildWorld, openApi, operations, resolve } from './fixtures.js'

it('explore', async () => {
  const lines: any[] = []
  const logger = pino({ level: 'error' }, { write: (s: string) => void lines.push(JSON.parse(s)) })
  const database = await openTestDatabase('postgres')
  const { app, services } = await buildApp({ config: testConfig(), database, broker: new MemoryBroker(), logger })
  await app.ready()
  const t: any = { app, services, database }
  const w = await buildWorld(t)
  const doc = await openApi(app)
  const urlOf = (path: string) => path.replace('/messages/{id}', `/messages/${w.message}`).replace('/users/{id}', `/users/${w.member.id}`).replace('{id}', w.group).replace('{user_id}', w.other.id)
  const found = new Map<string, string>()
  for (const op of operations(doc)) {
    if (op.requestBody) {
      const schema = resolve(doc, op.requestBody.content['application/json']!.schema)
      for (const arb of [hostileBody(schema, { uuid: w.other.id }), invalidBody(schema, { uuid: w.other.id })]) {
        for (const body of fc.sample(arb, 150)) {
          const before = lines.length
          const res = await app.inject({ method: op.method as any, url: urlOf(op.path), headers: { ...w.owner.auth, 'content-type': 'application/json' }, payload: toJson(body) })
          if (res.statusCode >= 500 || (res.statusCode >= 400 && !String(res.headers['content-type']).includes('problem'))) {
            const err = lines.slice(before).map((l) => l.err?.message ?? l.msg).join(' | ')
            const k = `${op.key} ${res.statusCode} ${err.slice(0, 150)}`
            if (!found.has(k)) found.set(k, toJson(body).slice(0, 200))
          }
        }
      }
    }
    if (op.method === 'GET' && op.path.startsWith('/api/')) {
      for (const v of fc.sample(hostileString, 100)) {
        for (const name of [...(op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name)]) {
          const before = lines.length
          const url = `${urlOf(op.path)}?${name}=${encodeURIComponent(v.toWellFormed())}`
          const res = await app.inject({ url, headers: w.owner.auth })
          if (res.statusCode >= 500) {
            const err = lines.slice(before).map((l) => l.err?.message ?? l.msg).join(' | ')
            const k = `GET ${op.path}?${name} ${res.statusCode} ${err.slice(0, 150)}`
            if (!found.has(k)) found.set(k, url.slice(0, 200))
          }
        }
      }
    }
  }
  const probes: [string, string, any][] = [
    ['POST', '/api/v1/auth/register', { email: 'a\u0000@b.co', password: 'Sup3r-secret!', full_name: 'x' }],
    ['POST', '/api/v1/auth/register', { email: 'a\ud800@b.co', password: 'Sup3r-secret!', full_name: 'x' }],
    ['POST', '/api/v1/auth/register', { email: 'ok1@b.co', password: 'Sup3r-secret!', full_name: 'x\u0000' }],
    ['POST', '/api/v1/auth/register', { email: 'ok2@b.co', password: 'Sup3r-secret!', full_name: 'x\ud800' }],
    ['POST', '/api/v1/auth/register', { email: 'ok3@b.co', password: 'Sup3r\u0000secret!', full_name: 'x' }],
    ['PATCH', '/api/v1/users/me', { full_name: 'a\u0000' }],
    ['PATCH', '/api/v1/users/me', { full_name: 'a\ud800' }],
    ['PATCH', '/api/v1/users/me', { email: 'z\u0000@b.co', current_password: w.owner.password }],
    ['POST', '/api/v1/auth/refresh', { refresh_token: 'a\u0000' }],
    ['POST', '/api/v1/auth/logout', { refresh_token: 'a\u0000' }],
    ['POST', '/api/v1/auth/login', { email: 'a\ud800@b.co', password: 'x' }],
    ['POST', `/api/v1/chat/groups`, { title: 'a\u0000' }],
    ['POST', `/api/v1/chat/conversations/${w.group}/messages`, { content: 'a', client_msg_id: 'x\u0000' }],
  ]
  for (const [method, url, body] of probes) {
    const before = lines.length
    const res = await app.inject({ method: method as any, url, headers: { ...w.owner.auth, 'content-type': 'application/json' }, payload: JSON.stringify(body) })
    console.log('PROBE', method, url, JSON.stringify(body), res.statusCode, res.statusCode < 300 ? JSON.stringify(res.json()).slice(0, 160) : lines.slice(before).map((l) => l.err?.message ?? l.msg).join(' | ').slice(0, 120) || res.body.slice(0, 120))
  }
  for (const [k, v] of found) console.log('FOUND', k, '\n   ', v)
  await app.close()
  await database.close()
}, 300_000)
