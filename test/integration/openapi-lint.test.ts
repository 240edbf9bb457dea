import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestApp, type TestApp } from '../helpers/app.js'

const run = promisify(execFile)
const ROOT = new URL('../../', import.meta.url).pathname
const SPECTRAL = join(ROOT, 'node_modules/@stoplight/spectral-cli/dist/index.js')

interface Finding {
  code: string
  message: string
  path: string[]
  severity: number
}

type Doc = {
  paths: Record<string, Record<string, Record<string, unknown>>>
  components: { schemas: Record<string, unknown> }
  [key: string]: unknown
}

/** Spectral's CLI with the project's ruleset (.spectral.js), as a developer runs it; every finding, hints included. */
async function spectral(doc: unknown, dir: string): Promise<Finding[]> {
  const name = Math.random().toString(36).slice(2)
  const file = join(dir, `openapi-${name}.json`)
  writeFileSync(file, JSON.stringify(doc))
  return spectralFile(file, dir)
}

async function spectralFile(file: string, dir: string): Promise<Finding[]> {
  const report = join(dir, `findings-${Math.random().toString(36).slice(2)}.json`)
  const args = [SPECTRAL, 'lint', '-r', '.spectral.js', '-F', 'hint', '-f', 'json', '-o', report, file]
  // Exit code 1 means findings, which the report lists; anything else is Spectral failing.
  await run(process.execPath, args, { cwd: ROOT }).catch((err: { code?: number; stderr?: string }) => {
    if (err.code !== 1) throw new Error(`spectral failed: ${err.stderr ?? String(err)}`)
  })
  return JSON.parse(readFileSync(report, 'utf8')) as Finding[]
}

const operationsOf = (doc: Doc) =>
  Object.entries(doc.paths).flatMap(([path, byMethod]) =>
    Object.entries(byMethod).map(([method, op]) => ({ key: `${method.toUpperCase()} ${path}`, op })),
  )

/**
 * The names a generated client is built on (openapi-typescript: `operations[...]`,
 * `components['schemas'][...]`). Adding is free; renaming or removing one breaks clients, so it
 * fails here first (docs/api.md).
 */
const PUBLISHED_OPERATIONS = [
  'addMember',
  'createGroup',
  'createWsTicket',
  'deleteMe',
  'deleteMessage',
  'deleteUser',
  'editMessage',
  'getConversation',
  'getHealth',
  'getMe',
  'getMetrics',
  'getReadiness',
  'getUser',
  'listConversations',
  'listMessages',
  'login',
  'logout',
  'markRead',
  'openDirectConversation',
  'refreshToken',
  'register',
  'removeMember',
  'renameGroup',
  'searchUsers',
  'sendMessage',
  'setMemberRole',
  'updateMe',
  'updateUser',
]
const PUBLISHED_SCHEMAS = [
  'Conversation',
  'ConversationPage',
  'Health',
  'Member',
  'Message',
  'MessageHistory',
  'PrivateUser',
  'Problem',
  'PublicUser',
  'ReadMarker',
  'Readiness',
  'Registration',
  'TokenPair',
  'UserPage',
  'WsTicket',
]

describe('/openapi.json', () => {
  let t: TestApp
  let doc: Doc
  let dir: string
  beforeAll(async () => {
    t = await startTestApp()
    doc = (await t.app.inject('/openapi.json')).json() as Doc
    dir = mkdtempSync(join(tmpdir(), 'chat-openapi-'))
  })
  afterAll(async () => {
    await t?.close()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('/openapi.json passes Spectral (spectral:oas and the OWASP ruleset, .spectral.js) without a single finding', async () => {
    const findings = await spectral(doc, dir)
    expect(findings.map((f) => `${f.code} at ${f.path.join('.')}: ${f.message}`)).toEqual([])
  })

  it('docs/asyncapi.yaml passes Spectral (spectral:asyncapi) without a single finding', async () => {
    const findings = await spectralFile(join(ROOT, 'docs/asyncapi.yaml'), dir)
    expect(findings.map((f) => `${f.code} at ${f.path.join('.')}: ${f.message}`)).toEqual([])
  })

  it('the lint does fail a document that breaks a rule', async () => {
    const broken = structuredClone(doc)
    const login = broken.paths['/api/v1/auth/login']?.post as Record<string, unknown>
    delete login.operationId
    delete login.description
    const codes = (await spectral(broken, dir)).map((f) => f.code)
    expect(codes).toEqual(expect.arrayContaining(['operation-operationId', 'operation-description']))
  })

  it('keeps every published operationId and component name (clients are generated from them)', () => {
    const ids = operationsOf(doc).map(({ op }) => op.operationId)
    expect(ids).toEqual(expect.arrayContaining(PUBLISHED_OPERATIONS))
    expect(Object.keys(doc.components.schemas)).toEqual(expect.arrayContaining(PUBLISHED_SCHEMAS))
  })

  it('names operations in camelCase, once each, and names every component (no def-N)', () => {
    const ids = operationsOf(doc).map(({ op }) => op.operationId as string)
    expect(new Set(ids).size).toBe(ids.length)
    for (const id of ids) expect(id).toMatch(/^[a-z][a-zA-Z]+$/)
    for (const name of Object.keys(doc.components.schemas)) expect(name).toMatch(/^[A-Z][A-Za-z]+$/)
  })

  it('documents every error response as application/problem+json with the Problem schema', () => {
    const wrong: string[] = []
    for (const { key, op } of operationsOf(doc)) {
      const responses = op.responses as Record<
        string,
        { content?: Record<string, { schema?: { $ref?: string } }> }
      >
      for (const [status, response] of Object.entries(responses)) {
        if (Number(status) < 400 || (key === 'GET /ready' && status === '503')) continue
        const media = Object.keys(response.content ?? {})
        const ref = response.content?.['application/problem+json']?.schema?.$ref
        if (media.join() !== 'application/problem+json' || ref !== '#/components/schemas/Problem') {
          wrong.push(`${key} ${status}: ${media.join()} ${ref}`)
        }
      }
    }
    expect(wrong).toEqual([])
  })
})
