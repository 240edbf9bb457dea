import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { TEST_SECRET } from './app.js'
import { freePort } from './ws-client.js'

/** `src/server.ts` as production runs it, on a free port; resolves once it listens. */
export async function startServer(env: Record<string, string>) {
  const port = await freePort()
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: join(import.meta.dirname, '..', '..'),
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      JWT_SECRET: TEST_SECRET,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  const collect = (c: Buffer) => {
    output += c.toString()
  }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)
  await new Promise<void>((resolve, reject) => {
    const onData = () => {
      if (output.includes('listening on')) resolve()
    }
    child.stdout?.on('data', onData)
    child.once('exit', (code) => reject(new Error(`server exited (${code}) before listening:\n${output}`)))
  })
  return { child, url: `http://127.0.0.1:${port}`, output: () => output }
}
