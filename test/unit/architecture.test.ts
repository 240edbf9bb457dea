import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

/**
 * The layering of docs/architecture.md, checked on the imports themselves (type-only imports
 * included: a type import is still an arrow someone must follow to read the code).
 * transports (http/, ws/) → services/ → store/, broker/ and storage/; protocol/, errors.ts, lib/ are leaves.
 */
const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src')

const FORBIDDEN: [from: string, to: string, why: string][] = [
  ['services', 'http', 'services are transport-free'],
  ['services', 'ws', 'services are transport-free'],
  ['store', 'http', 'the store knows nothing above it'],
  ['store', 'ws', 'the store knows nothing above it'],
  ['store', 'services', 'the store knows nothing above it'],
  ['broker', 'ws', 'the broker implements ports; it does not reach into transports'],
  ['broker', 'http', 'the broker implements ports; it does not reach into transports'],
  ['broker', 'store', 'the broker and the store are independent'],
  ['storage', 'ws', 'object storage implements a port; it does not reach into transports'],
  ['storage', 'http', 'object storage implements a port; it does not reach into transports'],
  ['storage', 'store', 'object storage and the store are independent'],
  ['storage', 'broker', 'object storage and the broker are independent'],
  ['broker', 'storage', 'object storage and the broker are independent'],
  ['store', 'storage', 'the store knows nothing of object storage'],
  ['services', 'storage', 'services use the ObjectStorage port; wiring.ts picks the implementation'],
  ['http', 'storage', 'routes go through services'],
  ['ws', 'storage', 'the gateway goes through services'],
  ['http', 'store', 'routes go through services'],
  ['ws', 'store', 'the gateway goes through services'],
  ['protocol', 'services', 'the protocol is a leaf'],
  ['protocol', 'store', 'the protocol is a leaf'],
  ['auth', 'services', 'auth is below services'],
  ['lib', 'services', 'lib is a leaf'],
]

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  )
}

/** Relative imports of a file, resolved to paths under src/ (`.js` specifiers name `.ts` files). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  const specs = [...text.matchAll(/(?:from\s+|import\s*\(\s*)'(\.{1,2}\/[^']+)'/g)].map((m) => m[1] as string)
  return specs.map((s) => resolve(dirname(file), s.replace(/\.js$/, '.ts')))
}

const layer = (file: string): string => {
  const rel = relative(SRC, file)
  return rel.includes('/') ? (rel.split('/')[0] as string) : rel.replace(/\.ts$/, '')
}

const graph = new Map(sourceFiles(SRC).map((f) => [f, importsOf(f)]))
const name = (f: string) => relative(SRC, f)

/** Every import cycle, each as the files around it (found by depth-first search). */
function cycles(): string[][] {
  const found: string[][] = []
  const state = new Map<string, 'open' | 'done'>()
  const stack: string[] = []
  const visit = (f: string) => {
    state.set(f, 'open')
    stack.push(f)
    for (const to of graph.get(f) ?? []) {
      if (state.get(to) === 'open') found.push([...stack.slice(stack.indexOf(to)), to].map(name))
      else if (!state.has(to)) visit(to)
    }
    stack.pop()
    state.set(f, 'done')
  }
  for (const f of graph.keys()) if (!state.has(f)) visit(f)
  return found
}

describe('architecture', () => {
  it('has no import cycle', () => {
    expect(cycles()).toEqual([])
  })

  it.each(FORBIDDEN)('%s/ does not import %s/ (%s)', (from, to) => {
    const offending = [...graph]
      .filter(([f]) => layer(f) === from)
      .flatMap(([f, imports]) => imports.filter((i) => layer(i) === to).map((i) => `${name(f)} → ${name(i)}`))
    expect(offending).toEqual([])
  })

  it('keeps errors.ts free of imports, so every layer may use it', () => {
    expect(graph.get(join(SRC, 'errors.ts'))).toEqual([])
  })

  it('keeps every source file under 400 lines unless its top says why', () => {
    const long = [...graph.keys()].filter((f) => {
      const text = readFileSync(f, 'utf8')
      return text.split('\n').length > 400 && !text.slice(0, 600).includes('longer than 400 lines because')
    })
    expect(long.map(name)).toEqual([])
  })
})
