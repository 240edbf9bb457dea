import { join } from 'node:path'
import type WebSocket from 'ws'
import { parseOptions } from './options.js'
import { RESULTS_DIR } from './proc.js'
import { pool } from './rest.js'
import { closeAll, openSocket } from './sockets.js'
import { runId, startRelay, startTarget, type Target } from './targets.js'

/**
 * `npx tsx bench/socket-heap.ts [sockets] [--snapshot]`: what one idle socket costs the chat server
 * (an authenticated user socket that follows no conversation) and the bare `ws` relay, measured in
 * the same run: JS heap and RSS after two forced GCs, before and after opening the sockets, per
 * socket. `--snapshot` also writes a heap snapshot of each server with the sockets open
 * (bench/results/), to see what each socket holds.
 */
const args = process.argv.slice(2)
const sockets = Number(args.find((a) => /^\d+$/.test(a)) ?? 2000)
const snapshot = args.includes('--snapshot')
const id = runId()
const o = parseOptions(['connections'])

async function measure(target: Target, url: (i: number, token: string, user: string) => string) {
  const users = await target.createUsers(Math.ceil(sockets / 10))
  const open = (i: number) => {
    const u = users[i % users.length] as { id: string; token: string }
    return openSocket(url(i, u.token, u.id), {
      headers: u.token ? { authorization: `Bearer ${u.token}` } : {},
    })
  }
  // Warm up, so the baseline is not a cold process.
  await closeAll(await pool([...Array(100).keys()], 20, open))
  await new Promise((r) => setTimeout(r, 500))
  const before = await target.stats(0, true)
  const opened: WebSocket[] = await pool([...Array(sockets).keys()], 50, open)
  await new Promise((r) => setTimeout(r, 2000))
  const after = await target.stats(0, true)
  let file: string | undefined
  if (snapshot) {
    file = join(RESULTS_DIR, `heap-${target.kind}-${id}.heapsnapshot`)
    await target.instances[0]?.child?.request('heapSnapshot', { file })
  }
  await closeAll(opened)
  const per = (k: 'rss' | 'heapUsed') =>
    Math.round((((after?.[k] ?? 0) - (before?.[k] ?? 0)) / sockets / 1024) * 100) / 100
  return { heap_kib: per('heapUsed'), rss_kib: per('rss'), snapshot: file }
}

const relay = await startRelay(o, id)
let relayFigures: Awaited<ReturnType<typeof measure>>
try {
  relayFigures = await measure(relay, (_i, _t, user) => `${relay.instances[0]?.wsUrl}/?user=${user}&convs=`)
} finally {
  await relay.stop()
}
const chat = await startTarget(o, id)
let chatFigures: Awaited<ReturnType<typeof measure>>
try {
  chatFigures = await measure(chat, () => `${chat.instances[0]?.wsUrl}/api/v1/chat/ws`)
} finally {
  await chat.stop()
}
console.log(JSON.stringify({ sockets, relay: relayFigures, chat: chatFigures }, null, 2))
console.log(
  `per idle socket: chat ${chatFigures.heap_kib} KiB heap / ${chatFigures.rss_kib} KiB RSS; ` +
    `bare ws ${relayFigures.heap_kib} KiB heap / ${relayFigures.rss_kib} KiB RSS; ` +
    `RSS ratio ${Math.round((chatFigures.rss_kib / Math.max(relayFigures.rss_kib, 0.01)) * 100) / 100}`,
)
process.exit(0)
