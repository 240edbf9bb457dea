import { type Correctness, MessagingLoad, type StepResult, type WorldSpec } from '../messaging.js'
import type { Target } from '../targets.js'
import type { Context } from './context.js'

/** Sets up a world on `target`, runs the ramp with a live progress line, and checks delivery. */
export async function runRamp(
  ctx: Context,
  target: Target,
  spec: WorldSpec,
  label: string,
  unit: 'messages' | 'deliveries',
): Promise<{ steps: StepResult[]; correctness: Correctness }> {
  const { o, progress } = ctx
  progress.log(`${label}: setting up ${spec.users} users, ${spec.conversations.length} conversations`)
  ctx.status = () => ({ fraction: 0, text: `${label}: setting up` })
  const load = await MessagingLoad.setup(target, spec, o.size, progress)
  await target.profileStart()
  let step = 0
  let stepStart = performance.now()
  ctx.status = () => {
    const inStep = Math.min(1, (performance.now() - stepStart) / (o.stepSeconds * 1000))
    return {
      fraction: (step + inStep) / o.steps.length,
      text: `${label} step ${step + 1}/${o.steps.length} @${o.steps[step]}/s ${load.liveStatus()}`,
    }
  }
  const steps = await load.ramp(o.steps, o.stepSeconds, {
    drainSeconds: o.drainSeconds,
    stopOnSaturation: o.stopOnSaturation && o.steps.length > 1,
    onStep: (i) => {
      step = i
      stepStart = performance.now()
    },
    onStepDone: (s) => progress.log(stepLine(label, s, unit)),
  })
  const correctness = await load.finish()
  return { steps, correctness }
}

function stepLine(label: string, s: StepResult, unit: 'messages' | 'deliveries'): string {
  const rate =
    unit === 'messages' ? `${s.messages_per_sec} msg/s delivered` : `${s.deliveries_per_sec} deliveries/s`
  return `  ${label} @${s.offered_per_sec}/s: ${rate}, p50 ${s.latency.p50_ms} ms, p99 ${s.latency.p99_ms} ms${s.saturated ? ' (saturated)' : ''}`
}
