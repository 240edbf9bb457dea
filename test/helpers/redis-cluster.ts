import { type ChildProcess, execFile } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { spawnRedisServer } from './private-redis.js'
import { eventually, freePort } from './ws-client.js'

const run = promisify(execFile)

/**
 * How long a primary may be silent before the cluster calls it failed and its replica takes over.
 * Redis' default is 15 s; a short one keeps the failover test short and is what a deployment that
 * wants fast failover sets (docs/scaling.md, "Redis Cluster").
 */
export const NODE_TIMEOUT_MS = 1000

interface Node {
  port: number
  proc: ChildProcess | undefined
}

/**
 * A real Redis Cluster of the test's own: 6 `redis-server --cluster-enabled yes` processes on
 * spare ports (client and bus port both chosen free), made into 3 primaries with one replica
 * each by `redis-cli --cluster create`. `start` resolves once every node reports
 * `cluster_state:ok`; `remove` kills them all and deletes their directory.
 */
export class PrivateRedisCluster {
  private readonly dir = mkdtempSync(join(tmpdir(), 'redis-cluster-'))

  private constructor(private readonly nodes: Node[]) {}

  static async start(size = 6): Promise<PrivateRedisCluster> {
    const nodes: Node[] = []
    const cluster = new PrivateRedisCluster(nodes)
    try {
      for (let i = 0; i < size; i++) {
        const node = { port: await freePort(), proc: undefined }
        nodes.push(node)
        await cluster.spawn(node, await freePort())
      }
      const addresses = nodes.map((n) => `127.0.0.1:${n.port}`)
      await run('redis-cli', [
        '--cluster',
        'create',
        ...addresses,
        '--cluster-replicas',
        '1',
        '--cluster-yes',
      ])
      await cluster.waitUntilOk()
      await cluster.waitForReplicas()
    } catch (err) {
      cluster.removeNow()
      throw err
    }
    return cluster
  }

  /** `REDIS_CLUSTER_NODES` for the app: every node, as seeds. */
  get seeds(): string {
    return this.nodes.map((n) => `127.0.0.1:${n.port}`).join(',')
  }

  get ports(): number[] {
    return this.nodes.map((n) => n.port)
  }

  /** Resolves once every running node says `cluster_state:ok` and agrees on all 16384 slots. */
  async waitUntilOk(timeoutMs = 20_000): Promise<void> {
    await eventually(
      'every cluster node to report cluster_state:ok',
      async () => {
        for (const node of this.nodes.filter((n) => n.proc)) {
          const info = await this.admin(node.port, (r) => r.cluster('INFO')).catch(() => '')
          if (!info.includes('cluster_state:ok') || !info.includes('cluster_slots_ok:16384')) return false
        }
        return true
      },
      timeoutMs,
    )
  }

  /**
   * Resolves once every replica has synced with its primary: a replica that never did refuses to
   * take over (its data is too old), so a failover test must not kill a primary before this.
   */
  async waitForReplicas(timeoutMs = 20_000): Promise<void> {
    await eventually(
      'every replica to sync with its primary',
      async () => {
        let replicas = 0
        for (const node of this.nodes.filter((n) => n.proc)) {
          const info = await this.admin(node.port, (r) => r.info('replication')).catch(() => '')
          if (!info.includes('role:slave')) continue
          if (!info.includes('master_link_status:up')) return false
          replicas++
        }
        return replicas === this.nodes.length / 2
      },
      timeoutMs,
    )
  }

  /** The port of the primary that serves `key`'s slot now, asked of a running node. */
  async primaryOf(key: string): Promise<number> {
    const node = this.nodes.find((n) => n.proc)
    if (!node) throw new Error('no cluster node is running')
    return this.admin(node.port, async (r) => {
      const slot = (await r.cluster('KEYSLOT', key)) as number
      const ranges = (await r.cluster('SLOTS')) as unknown as [number, number, [string, number]][]
      const range = ranges.find(([from, to]) => slot >= from && slot <= to)
      if (!range) throw new Error(`no node serves slot ${slot}`)
      return range[2][1]
    })
  }

  /** SIGKILLs the node on `port`: a crash, as clients and the other nodes see it. */
  async kill(port: number): Promise<void> {
    const node = this.nodes.find((n) => n.port === port)
    const proc = node?.proc
    if (!node || !proc) throw new Error(`no running node on port ${port}`)
    node.proc = undefined
    proc.kill('SIGKILL')
    if (proc.exitCode === null && proc.signalCode === null) await once(proc, 'exit')
  }

  /** Every node that is still running, killed, and the directory deleted. */
  async remove(): Promise<void> {
    for (const node of this.nodes) if (node.proc) await this.kill(node.port)
    rmSync(this.dir, { recursive: true, force: true })
  }

  /** The same, synchronously (after a failed start). */
  private removeNow(): void {
    for (const node of this.nodes) node.proc?.kill('SIGKILL')
    rmSync(this.dir, { recursive: true, force: true })
  }

  /** Runs `fn` on a short-lived plain connection to one node (not a cluster client). */
  async admin<T>(port: number, fn: (redis: Redis) => Promise<T>): Promise<T> {
    const redis = new Redis(port, '127.0.0.1', {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    })
    try {
      await redis.connect()
      return await fn(redis)
    } finally {
      redis.disconnect()
    }
  }

  private async spawn(node: Node, busPort: number): Promise<void> {
    // No persistence: a killed node comes back empty, as a cache without persistence does.
    const args = [
      ['--port', String(node.port)],
      ['--cluster-port', String(busPort)],
      ['--bind', '127.0.0.1'],
      ['--cluster-enabled', 'yes'],
      ['--cluster-config-file', `nodes-${node.port}.conf`],
      ['--cluster-node-timeout', String(NODE_TIMEOUT_MS)],
      ['--save', ''],
      // Replicas sync at once (the default waits 5 s for more replicas to share one transfer).
      ['--repl-diskless-sync-delay', '0'],
      ['--appendonly', 'no'],
      ['--dir', this.dir],
    ].flat()
    const proc = await spawnRedisServer(args)
    node.proc = proc
  }
}
