import http from 'node:http'

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    what: string,
  ) {
    super(`${what}: HTTP ${status} ${body.slice(0, 300)}`)
  }
}

/** A small JSON client over keep-alive connections (cheaper per request than fetch). */
export class Rest {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
  private readonly url: URL

  constructor(base: string) {
    this.url = new URL(base)
  }

  /** Resolves with the parsed body of a 2xx answer; rejects with HttpError otherwise. */
  call<T>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
    return this.raw(method, path, body, token).then(({ status, text }) => {
      if (status < 200 || status > 299) throw new HttpError(status, text, `${method} ${path}`)
      return (text ? JSON.parse(text) : undefined) as T
    })
  }

  raw(
    method: string,
    path: string,
    body?: unknown,
    token?: string,
  ): Promise<{ status: number; text: string; headers: http.IncomingHttpHeaders }> {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const headers: http.OutgoingHttpHeaders = {}
    if (payload !== undefined) {
      headers['content-type'] = 'application/json'
      headers['content-length'] = Buffer.byteLength(payload)
    }
    if (token) headers.authorization = `Bearer ${token}`
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: this.url.hostname, port: this.url.port, path, method, headers, agent: this.agent },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              text: Buffer.concat(chunks).toString('utf8'),
              headers: res.headers,
            }),
          )
          res.on('error', reject)
        },
      )
      req.on('error', reject)
      req.end(payload)
    })
  }

  close(): void {
    this.agent.destroy()
  }
}

/** Maps `items` through `fn` with at most `concurrency` calls in flight; keeps the order. */
export async function pool<T, R>(
  items: T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i] as T, i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker))
  return out
}
