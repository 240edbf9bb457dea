import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { CLIENT_TYPES_FILE, clientTypes } from '../../scripts/client-types.js'

describe('the SDK REST types', () => {
  it('are what the current OpenAPI document generates (else run `npm run client:types`)', async () => {
    const committed = readFileSync(CLIENT_TYPES_FILE, 'utf8')
    const generated = await clientTypes()
    // A plain equality, so the message says which part of the document moved.
    expect(committed, 'client/src/generated/openapi.ts is stale: run `npm run client:types`').toBe(generated)
  })
})
