import { type ChildProcess, spawn } from 'node:child_process'
import http from 'node:http'
import net from 'node:net'

/**
 * `npm run cluster -- N`: the docker-compose topology as local processes. N instances on ports
 * 8001.. sharing DATABASE_URL and REDIS_URL, behind a round-robin proxy on PORT (8000) that passes
 * WebSocket upgrades through, with no stickiness, like deploy/nginx.conf.
 */
const count = Number(process.argv[2] ?? 2)
const port = Number(process.env.PORT ?? 8000)
if (!process.env.DATABASE_URL || !process.env.REDIS_URL) {
  console.error(
    'npm run cluster needs DATABASE_URL and REDIS_URL (instances must share PostgreSQL and Redis)',
  )
  process.exit(1)
}

const backends = Array.from({ length: count }, (_, i) => port + 1 + i)
const children: ChildProcess[] = backends.map((p) =>
  spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { ...process.env, PORT: String(p), HOST: '127.0.0.1' },
    stdio: 'inherit',
  }),
)

let next = 0
const pick = () => backends[next++ % backends.length] as number

const proxy = http.createServer((req, res) => {
  const upstream = http.request(
    { host: '127.0.0.1', port: pick(), method: req.method, path: req.url, headers: req.headers },
    (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers)
      up.pipe(res)
    },
  )
  upstream.on('error', () => {
    res.writeHead(502).end()
  })
  req.pipe(upstream)
})

proxy.on('upgrade', (req, socket, head) => {
  const upstream = net.connect(pick(), '127.0.0.1', () => {
    const lines = [`${req.method} ${req.url} HTTP/1.1`]
    for (let i = 0; i < req.rawHeaders.length; i += 2)
      lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`)
    upstream.write(`${lines.join('\r\n')}\r\n\r\n`)
    upstream.write(head)
    socket.pipe(upstream).pipe(socket)
  })
  const drop = () => {
    socket.destroy()
    upstream.destroy()
  }
  upstream.on('error', drop)
  socket.on('error', drop)
})

proxy.listen(port, () => console.log(`load balancer on :${port} → instances on ${backends.join(', ')}`))

const stop = () => {
  proxy.close()
  for (const c of children) c.kill('SIGTERM')
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
