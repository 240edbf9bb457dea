import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { asyncApiDocument } from '../../src/protocol/asyncapi.js'
import { ClientFrame } from '../../src/protocol/frames.js'
import { ServerFrames } from '../../src/protocol/server-frames.js'

describe('docs/asyncapi.yaml', () => {
  const committed = parse(readFileSync(new URL('../../docs/asyncapi.yaml', import.meta.url), 'utf8'))

  it('is what `npm run asyncapi` generates from the frame schemas (regenerate it when this fails)', () => {
    expect(committed).toEqual(JSON.parse(JSON.stringify(asyncApiDocument())))
  })

  it('documents every frame type in both directions', () => {
    const names = Object.values(committed.components.messages as Record<string, { name: string }>).map(
      (m) => m.name,
    )
    for (const s of ClientFrame.anyOf) expect(names).toContain(s.properties.type.const)
    for (const s of ServerFrames) expect(names).toContain(s.properties.type.const)
    expect(committed.asyncapi).toBe('3.0.0')
  })
})
