import { readFileSync } from 'node:fs'

/**
 * `npx tsx bench/prof-summary.ts <file.cpuprofile> [top]`: the functions with the most self time
 * and the most total (inclusive) time in a V8 CPU profile (`--cpu-prof`), as percentages.
 */
interface Node {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount?: number
  children?: number[]
}
const [file, topArg] = process.argv.slice(2)
if (!file) {
  console.error('usage: tsx bench/prof-summary.ts <file.cpuprofile> [top]')
  process.exit(2)
}
const top = Number(topArg ?? 30)
const prof = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[]; samples: number[] }
const byId = new Map(prof.nodes.map((n) => [n.id, n]))
const parent = new Map<number, number>()
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
const counts = new Map<number, number>()
for (const s of prof.samples) counts.set(s, (counts.get(s) ?? 0) + 1)
const total = prof.samples.length
const key = (n: Node) => {
  const url = n.callFrame.url.replace(/^file:\/\//, '').replace(process.cwd(), '.')
  return `${n.callFrame.functionName || '(anonymous)'} ${url ? `${url}:${n.callFrame.lineNumber + 1}` : ''}`
}
const self = new Map<string, number>()
const inclusive = new Map<string, number>()
for (const [id, c] of counts) {
  const n = byId.get(id) as Node
  self.set(key(n), (self.get(key(n)) ?? 0) + c)
  const seen = new Set<string>()
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const k = key(byId.get(cur) as Node)
    if (seen.has(k)) continue
    seen.add(k)
    inclusive.set(k, (inclusive.get(k) ?? 0) + c)
  }
}
const show = (title: string, m: Map<string, number>) => {
  console.log(`\n${title} (${total} samples)`)
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top))
    console.log(`${((v / total) * 100).toFixed(1).padStart(6)}%  ${k}`)
}
show('self time', self)
show('total time', inclusive)
