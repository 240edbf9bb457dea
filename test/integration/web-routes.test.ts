import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WEB_CSP } from '../../src/http/web-routes.js'
import { openTestDatabase, startTestApp, type TestApp } from '../helpers/app.js'

/**
 * How the server serves the web client's build (WEB_DIR), without a browser: the browser side is
 * test/e2e/web-client.test.ts.
 */
describe('web client routes', () => {
  let dir: string
  let database: Awaited<ReturnType<typeof openTestDatabase>>
  let built: TestApp
  let missing: TestApp

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chat-web-routes-'))
    mkdirSync(join(dir, 'assets'))
    writeFileSync(join(dir, 'index.html'), '<!doctype html><div id="app"></div>')
    writeFileSync(join(dir, 'assets', 'index-abc123.js'), 'console.log(1)')
    database = await openTestDatabase('postgres')
    built = await startTestApp({ database, env: { WEB_DIR: dir } })
    missing = await startTestApp({ database, env: { WEB_DIR: join(dir, 'absent') } })
  })

  afterAll(async () => {
    await built?.close()
    await missing?.close()
    await database?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('serves index.html at / with the app CSP, revalidated on every load', async () => {
    const res = await built.app.inject({ url: '/' })
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toMatch(/^text\/html/)
    expect(res.headers['content-security-policy']).toBe(WEB_CSP)
    expect(res.headers['cache-control']).toBe('no-cache')
    expect(res.body).toContain('<div id="app">')
  })

  it('serves hashed assets as immutable', async () => {
    const res = await built.app.inject({ url: '/assets/index-abc123.js' })
    expect(res.statusCode).toBe(200)
    expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable')
  })

  it('has no catch-all: an unknown path is still the API problem+json 404, and /docs keeps its own CSP', async () => {
    const res = await built.app.inject({ url: '/no/such/page' })
    expect(res.statusCode).toBe(404)
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
    const docs = await built.app.inject({ url: '/docs/json' })
    expect(docs.statusCode).toBe(200)
    expect(docs.headers['content-security-policy']).toContain("'unsafe-inline'")
  })

  it('keeps the static routes out of the OpenAPI document', async () => {
    const doc = (await built.app.inject({ url: '/openapi.json' })).json() as {
      paths: Record<string, unknown>
    }
    expect(
      Object.keys(doc.paths).filter((p) => p === '/' || p.startsWith('/assets') || p.endsWith('.html')),
    ).toEqual([])
  })

  it('starts without a build and serves the API only', async () => {
    const res = await missing.app.inject({ url: '/' })
    expect(res.statusCode).toBe(404)
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
    expect((await missing.app.inject({ url: '/health' })).statusCode).toBe(200)
  })
})
