import * as hdr from 'hdr-histogram-js'

export interface LatencySummary {
  count: number
  p50_ms: number
  p90_ms: number
  p99_ms: number
  p999_ms: number
  max_ms: number
  mean_ms: number
}

/** Latencies in microseconds in an HDR histogram (3 significant digits), reported in ms. */
export class Latency {
  private readonly h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
    autoResize: true,
  })

  /** Records one latency given in milliseconds. */
  recordMs(ms: number): void {
    this.h.recordValue(Math.max(1, Math.round(ms * 1000)))
  }

  get count(): number {
    return this.h.totalCount
  }

  summary(): LatencySummary {
    const at = (p: number) => (this.h.totalCount === 0 ? 0 : round(this.h.getValueAtPercentile(p) / 1000))
    return {
      count: this.h.totalCount,
      p50_ms: at(50),
      p90_ms: at(90),
      p99_ms: at(99),
      p999_ms: at(99.9),
      max_ms: this.h.totalCount === 0 ? 0 : round(this.h.maxValue / 1000),
      mean_ms: this.h.totalCount === 0 ? 0 : round(this.h.mean / 1000),
    }
  }
}

export const round = (n: number, digits = 3): number => {
  const f = 10 ** digits
  return Math.round(n * f) / f
}
