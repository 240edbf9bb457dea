/**
 * A small SVG line chart for ramp scenarios: delivered messages/s (left axis, linear) and p50/p99
 * latency (right axis, log scale) against offered load, for one or more series (e.g. the chat
 * server and the bare relay). Plain SVG, no dependencies.
 */
export interface ChartPoint {
  offered: number
  delivered: number
  p50: number
  p99: number
}

export interface ChartSeries {
  name: string
  points: ChartPoint[]
}

const W = 860
const H = 480
const M = { left: 78, right: 78, top: 56, bottom: 84 }
const COLORS = ['#1f6fd1', '#d1731f', '#2e9b4f', '#9b2e8a']

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

function niceStep(max: number, ticks: number): number {
  const raw = max / ticks
  const mag = 10 ** Math.floor(Math.log10(raw))
  const n = raw / mag
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 2.5 ? 2.5 : n <= 5 ? 5 : 10) * mag
}

const fmt = (v: number) => (v >= 1000 ? `${+(v / 1000).toFixed(1)}k` : `${+v.toFixed(2)}`)

export function rampChart(
  title: string,
  series: ChartSeries[],
  unit = 'messages/s',
  latencyBoundMs = 50,
): string {
  const all = series.flatMap((s) => s.points)
  const xMax = Math.max(1, ...all.map((p) => p.offered))
  const yMaxRaw = Math.max(1, ...all.map((p) => Math.max(p.delivered, p.offered)))
  const xStep = niceStep(xMax, 6)
  const yStep = niceStep(yMaxRaw, 6)
  const xTop = Math.ceil(xMax / xStep) * xStep
  const yTop = Math.ceil(yMaxRaw / yStep) * yStep
  const lats = all.flatMap((p) => [p.p50, p.p99]).filter((v) => v > 0)
  const lMin = 10 ** Math.floor(Math.log10(Math.max(0.01, Math.min(...lats, 1))))
  const lMax = 10 ** Math.ceil(Math.log10(Math.max(...lats, 10)))
  const pw = W - M.left - M.right
  const ph = H - M.top - M.bottom
  const x = (v: number) => M.left + (v / xTop) * pw
  const y = (v: number) => M.top + ph - (v / yTop) * ph
  const yl = (v: number) =>
    M.top +
    ph -
    ((Math.log10(Math.max(v, lMin)) - Math.log10(lMin)) / (Math.log10(lMax) - Math.log10(lMin))) * ph
  const out: string[] = []
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="600">${esc(title)}</text>`,
  )
  // grid and axes
  for (let v = 0; v <= yTop + 1e-9; v += yStep) {
    out.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${y(v)}" y2="${y(v)}" stroke="#e6e6e6"/>`)
    out.push(`<text x="${M.left - 8}" y="${y(v) + 4}" text-anchor="end" fill="#333">${fmt(v)}</text>`)
  }
  for (let v = 0; v <= xTop + 1e-9; v += xStep) {
    out.push(`<line x1="${x(v)}" x2="${x(v)}" y1="${M.top}" y2="${M.top + ph}" stroke="#f0f0f0"/>`)
    out.push(`<text x="${x(v)}" y="${M.top + ph + 18}" text-anchor="middle" fill="#333">${fmt(v)}</text>`)
  }
  for (let v = lMin; v <= lMax * 1.0001; v *= 10) {
    out.push(`<text x="${M.left + pw + 8}" y="${yl(v) + 4}" fill="#666">${fmt(v)} ms</text>`)
    out.push(`<line x1="${M.left + pw}" x2="${M.left + pw + 4}" y1="${yl(v)}" y2="${yl(v)}" stroke="#666"/>`)
  }
  out.push(
    `<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`,
    `<text x="${M.left + pw / 2}" y="${H - 46}" text-anchor="middle">offered load (${esc(unit)})</text>`,
    `<text transform="translate(18 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">delivered (${esc(unit)}), solid</text>`,
    `<text transform="translate(${W - 14} ${M.top + ph / 2}) rotate(90)" text-anchor="middle">latency p50 dotted, p99 dashed (log)</text>`,
    // delivered == offered
    `<line x1="${x(0)}" y1="${y(0)}" x2="${x(Math.min(xTop, yTop))}" y2="${y(Math.min(xTop, yTop))}" stroke="#bbb" stroke-dasharray="2 4"/>`,
  )
  if (latencyBoundMs >= lMin && latencyBoundMs <= lMax) {
    out.push(
      `<line x1="${M.left}" x2="${M.left + pw}" y1="${yl(latencyBoundMs)}" y2="${yl(latencyBoundMs)}" stroke="#c33" stroke-width="1" stroke-dasharray="1 3"/>`,
      `<text x="${M.left + pw - 6}" y="${yl(latencyBoundMs) - 5}" text-anchor="end" fill="#c33" font-size="11">p99 bound ${latencyBoundMs} ms</text>`,
    )
  }
  const path = (pts: [number, number][]) =>
    pts.map(([a, b], i) => `${i === 0 ? 'M' : 'L'}${a.toFixed(1)},${b.toFixed(1)}`).join(' ')
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]
    const pts = [...s.points].sort((a, b) => a.offered - b.offered)
    out.push(
      `<path d="${path(pts.map((p) => [x(p.offered), y(p.delivered)]))}" fill="none" stroke="${color}" stroke-width="2.5"/>`,
    )
    for (const p of pts)
      out.push(`<circle cx="${x(p.offered)}" cy="${y(p.delivered)}" r="3.5" fill="${color}"/>`)
    out.push(
      `<path d="${path(pts.map((p) => [x(p.offered), yl(p.p50)]))}" fill="none" stroke="${color}" stroke-width="1.5" stroke-dasharray="2 3"/>`,
      `<path d="${path(pts.map((p) => [x(p.offered), yl(p.p99)]))}" fill="none" stroke="${color}" stroke-width="1.5" stroke-dasharray="7 4"/>`,
    )
    const lx = M.left + i * 260
    out.push(
      `<line x1="${lx}" x2="${lx + 24}" y1="${H - 18}" y2="${H - 18}" stroke="${color}" stroke-width="2.5"/>`,
      `<text x="${lx + 30}" y="${H - 14}">${esc(s.name)}</text>`,
    )
  })
  out.push('</svg>')
  return `${out.join('\n')}\n`
}
