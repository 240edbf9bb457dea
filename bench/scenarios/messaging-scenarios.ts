import { dmWorld, groupWorld, type StepResult } from '../messaging.js'
import { rampSummary, stepsTable } from '../report.js'
import { startRelay, startTarget, type Target } from '../targets.js'
import { type Context, chartSeries, type ScenarioOutput, setupLabel } from './context.js'
import { runRamp } from './ramp.js'

async function withTarget<T>(target: Target, fn: (t: Target) => Promise<T>): Promise<T> {
  try {
    return await fn(target)
  } finally {
    await target.stop()
  }
}

const p99At = (steps: StepResult[], rate: number) =>
  steps.find((s) => s.offered_per_sec === rate)?.latency.p99_ms ?? null

/** dm (and cluster: the same over several instances through Redis). */
export async function dm(ctx: Context): Promise<ScenarioOutput> {
  const { o } = ctx
  const cluster = o.scenario === 'cluster'
  const target = await startTarget(o, ctx.id, cluster)
  return withTarget(target, async (t) => {
    const label = cluster ? `cluster×${t.instances.length}` : 'dm'
    const { steps, correctness } = await runRamp(ctx, t, dmWorld(o.users), label, 'messages')
    return {
      target: t.describe,
      series: [{ name: label, steps }],
      summary: { ...rampSummary(steps, 'messages'), p99_at_10000_ms: p99At(steps, 10000) },
      correctness,
      chart: {
        title: `${label}: ${o.users} users, ${o.users / 2} direct conversations (${setupLabel(t.describe)})`,
        unit: 'messages/s',
        series: [chartSeries(label, steps, 'messages')],
      },
      text: stepsTable(steps, 'messages'),
    }
  })
}

/** hot: every member of one group sends into it. */
export async function hot(ctx: Context): Promise<ScenarioOutput> {
  const { o } = ctx
  return withTarget(await startTarget(o, ctx.id), async (t) => {
    const { steps, correctness } = await runRamp(ctx, t, groupWorld(o.senders, o.senders), 'hot', 'messages')
    const best = steps.reduce((b, s) => Math.max(b, s.acked_per_sec), 0)
    return {
      target: t.describe,
      series: [{ name: 'hot', steps }],
      summary: {
        ...rampSummary(steps, 'messages'),
        max_acked_per_sec: best,
        gapless: correctness.seq_gaps === 0,
      },
      correctness,
      chart: {
        title: `hot: ${o.senders} senders into one conversation (${setupLabel(t.describe)})`,
        unit: 'messages/s',
        series: [chartSeries('hot', steps, 'messages')],
      },
      text: stepsTable(steps, 'messages'),
    }
  })
}

/** fanout: one big group, few senders; counts deliveries. */
export async function fanout(ctx: Context): Promise<ScenarioOutput> {
  const { o } = ctx
  return withTarget(await startTarget(o, ctx.id), async (t) => {
    const { steps, correctness } = await runRamp(
      ctx,
      t,
      groupWorld(o.members, o.senders),
      'fanout',
      'deliveries',
    )
    return {
      target: t.describe,
      series: [{ name: 'fanout', steps }],
      summary: rampSummary(steps, 'deliveries'),
      correctness,
      chart: {
        title: `fanout: group of ${o.members}, ${o.senders} sender(s) (${setupLabel(t.describe)})`,
        unit: 'deliveries/s',
        series: [chartSeries('fanout', steps, 'deliveries')],
      },
      text: stepsTable(steps, 'deliveries'),
    }
  })
}

/** ceiling: the dm ramp against the bare relay, then against the chat server, in one run. */
export async function ceiling(ctx: Context): Promise<ScenarioOutput> {
  const { o, progress } = ctx
  const world = dmWorld(o.users)
  const relayRun = await withTarget(await startRelay(o, ctx.id), (t) =>
    runRamp(ctx, t, world, 'relay', 'messages'),
  )
  progress.log('relay done; now the chat server')
  const chatTarget = await startTarget(o, ctx.id)
  const describe = chatTarget.describe
  const chatRun = await withTarget(chatTarget, (t) => runRamp(ctx, t, world, 'dm', 'messages'))
  const relay = rampSummary(relayRun.steps, 'messages')
  const chat = rampSummary(chatRun.steps, 'messages')
  const relayMax = relay.max_messages_per_sec as number
  const chatMax = chat.max_messages_per_sec as number
  const relay50 = relay.max_messages_per_sec_p99_le_50ms as number
  const chat50 = chat.max_messages_per_sec_p99_le_50ms as number
  const c1 = relayRun.correctness
  const c2 = chatRun.correctness
  const errors: Record<string, number> = { ...c1.errors }
  for (const [k, v] of Object.entries(c2.errors)) errors[k] = (errors[k] ?? 0) + v
  return {
    target: { chat: describe, relay: 'bare ws relay (bench/relay-child.ts)' },
    series: [
      { name: 'dm (chat server)', steps: chatRun.steps },
      { name: 'ceiling (bare ws relay)', steps: relayRun.steps },
    ],
    summary: {
      relay_max_messages_per_sec: relayMax,
      dm_max_messages_per_sec: chatMax,
      dm_ratio_to_ceiling: relayMax > 0 ? Math.round((chatMax / relayMax) * 1000) / 1000 : null,
      relay_max_p99_le_50ms: relay50,
      dm_max_p99_le_50ms: chat50,
      dm_ratio_to_ceiling_p99_le_50ms: relay50 > 0 ? Math.round((chat50 / relay50) * 1000) / 1000 : null,
      dm_p99_at_10000_ms: p99At(chatRun.steps, 10000),
      relay_p99_at_10000_ms: p99At(relayRun.steps, 10000),
    },
    correctness: {
      sent: c1.sent + c2.sent,
      acked: c1.acked + c2.acked,
      errors,
      lost: c1.lost + c2.lost,
      duplicated: c1.duplicated + c2.duplicated,
      out_of_order: c1.out_of_order + c2.out_of_order,
      unexpected_closes: c1.unexpected_closes + c2.unexpected_closes,
      seq_gaps: c1.seq_gaps + c2.seq_gaps,
    },
    details: { relay: relayRun.correctness, chat: chatRun.correctness },
    chart: {
      title: `dm vs ceiling: ${o.users} users, ${o.users / 2} direct conversations (${setupLabel(describe)})`,
      unit: 'messages/s',
      series: [
        chartSeries('dm (chat server)', chatRun.steps, 'messages'),
        chartSeries('ceiling (bare ws relay)', relayRun.steps, 'messages'),
      ],
    },
    text: `ceiling (bare ws relay)\n${stepsTable(relayRun.steps, 'messages')}\n\ndm (chat server)\n${stepsTable(chatRun.steps, 'messages')}`,
  }
}
