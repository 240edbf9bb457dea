import http from 'node:http'

/** A request that got no answer at all (the TCP connection stayed open). */
export class NoAnswer extends Error {}

export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new NoAnswer(`no answer within ${ms} ms`)), ms)
  })
  return Promise.race([p, t]).finally(() => clearTimeout(timer))
}

export interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  text: string
}

/**
 * A JSON POST whose body is written in ten pieces spread over `ms`, as a slow mobile client
 * uploads. `started` resolves once the second piece is written: the server has the request's
 * headers by then, so the request counts as under way. `done` rejects on a connection error.
 */
export function tricklePost(
  base: string,
  path: string,
  payload: unknown,
  token: string,
  agent: http.Agent,
  ms: number,
): { started: Promise<void>; done: Promise<Answer> } {
  const body = Buffer.from(JSON.stringify(payload))
  const url = new URL(base)
  const parts = 10
  let started!: () => void
  const startedP = new Promise<void>((r) => {
    started = r
  })
  const done = new Promise<Answer>((resolve, reject) => {
    const headers = {
      'content-type': 'application/json',
      'content-length': body.length,
      authorization: `Bearer ${token}`,
    }
    const req = http.request(
      { host: url.hostname, port: url.port, method: 'POST', path, agent, headers },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        )
      },
    )
    req.on('error', (err) => {
      started()
      reject(err)
    })
    const size = Math.ceil(body.length / parts)
    const write = (i: number) => {
      if (req.destroyed) return
      const chunk = body.subarray(i * size, (i + 1) * size)
      if (i === parts - 1) req.end(chunk)
      else req.write(chunk, () => i === 1 && started())
      if (i < parts - 1) setTimeout(() => write(i + 1), ms / parts)
    }
    write(0)
  })
  return { started: startedP, done }
}
