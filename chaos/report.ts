import type { RunResult } from './run.js'
import { FAULT_KINDS } from './schedule.js'

const s1 = (ms: number) => `${(ms / 1000).toFixed(1)}s`

/** Faults injected, by kind (the docs table). */
export function faultCounts(r: RunResult): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0]))
  for (const e of r.timeline) out[e.kind] = (out[e.kind] ?? 0) + 1
  return out
}

/** The human report: seed and replay command first, then the timeline, figures and violations. */
export function formatReport(r: RunResult): string {
  const o = r.options
  const lines: string[] = [
    '',
    `== chaos run: seed ${o.seed}, ${o.minutes} min, ${o.instances} instances, ${o.users} users, ${o.rate} msg/s offered`,
    `replay: ${r.replay}`,
    '',
    `fault timeline (load time; planned → started … recovered):`,
  ]
  for (const e of r.timeline) {
    lines.push(
      `  ${s1(e.plannedMs).padStart(7)} → ${s1(e.startMs).padStart(7)} … ${s1(e.endMs).padStart(7)}  ${e.description}`,
      ...(e.notes.length > 0 ? [`${' '.repeat(30)}${e.notes.join('; ')}`] : []),
    )
  }
  const fc = faultCounts(r)
  const c = r.counts
  lines.push(
    '',
    `faults injected: ${Object.entries(fc)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ')}`,
    `load ${s1(r.load_ms)}, converged in ${s1(r.converge_ms)}`,
    `messages: ${c.sends ?? 0} sent, ${r.checks?.acked_messages ?? 0} acked, ${r.checks?.stored_messages ?? 0} stored ` +
      `(${r.checks?.stored_never_acked ?? 0} stored but never acked), ${c.resends ?? 0} resends ` +
      `(${c.resends_after_timeout ?? 0} after an ack timeout), ${c.acks_repeated ?? 0} repeated acks`,
    ...(r.checks?.stored_never_acked_examples ?? []).map((e) => `  stored, never acked: ${e}`),
    `deliveries: ${c.deliveries ?? 0}; socket sessions ${c.sessions ?? 0}; membership removals ${c.removals ?? 0}, re-adds ${c.re_adds ?? 0}`,
    `closes: ${
      Object.entries(c)
        .filter(([k]) => k.startsWith('socket_close_'))
        .map(([k, n]) => `${k.slice(13)}×${n}`)
        .join(' ') || 'none'
    }; ` +
      `connect errors ${c.connect_errors ?? 0}, REST network errors ${c.rest_network_errors ?? 0}, REST no answer ${c.rest_no_answer ?? 0}`,
    `HTTP answers: ${Object.entries(r.http)
      .sort()
      .map(([k, n]) => `${k}×${n}`)
      .join(', ')}`,
    `WebSocket error frames: ${
      Object.entries(r.ws_errors)
        .map(([k, n]) => `${k}×${n}`)
        .join(', ') || 'none'
    }`,
  )
  lines.push('', 'instances (fds: fixed = not client or PostgreSQL sockets; RSS lowest of 3 samples):')
  for (const v of r.instances) {
    if (!v.measured || !v.baseline || !v.end) {
      lines.push(`  #${v.instance}: ${v.restarts} restarts; not measured (last life too short)`)
      continue
    }
    lines.push(
      `  #${v.instance}: ${v.restarts} restarts; over ${v.span_s}s of its last life: fixed fds ${v.baseline.fixed} → ${v.end.fixed}, ` +
        `client sockets ${v.end.clients} (proxy ${v.end.proxied}), PostgreSQL ${v.end.postgres}, Redis ${v.end.redis}, ` +
        `RSS ${v.rss_base_mib} → ${v.rss_end_mib} MiB`,
    )
  }
  lines.push('')
  if (r.violation_count === 0) {
    lines.push('violations: 0', '', 'OK')
  } else {
    lines.push(`violations: ${r.violation_count}`)
    for (const v of r.violations) {
      lines.push(`  ${v.kind}: ${v.count}`)
      for (const ex of v.examples) lines.push(`      ${ex}`)
    }
    lines.push('', `FAILED (seed ${o.seed}; replay: ${r.replay})`)
  }
  return lines.join('\n')
}
