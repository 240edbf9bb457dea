import { Cluster, Redis } from 'ioredis'

/** Where Redis is: one server (REDIS_URL), or seed nodes of a Redis Cluster (REDIS_CLUSTER_NODES). */
export type RedisTarget = { url: string } | { clusterNodes: { host: string; port: number }[] }

/** A connection to either: both speak the same commands; a cluster routes each by its key's slot. */
export type RedisClient = Redis | Cluster

const retry = (times: number) => Math.min(times * 100, 2000)

/**
 * The command connection (publishes, and the presence, ticket, limit and lease stores). No offline
 * queue: while Redis is unreachable a command fails at once, and the callers' fallbacks take over.
 * Auto-pipelining sends the commands issued in one event-loop turn (a committed batch's publishes)
 * in one write per server: one PUBLISH syscall per message was a measured cost.
 */
export function commandClient(target: RedisTarget): RedisClient {
  if ('url' in target) {
    return new Redis(target.url, {
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      retryStrategy: retry,
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      connectionName: 'chat-pub',
    })
  }
  return new Cluster(target.clusterNodes, {
    lazyConnect: true,
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    clusterRetryStrategy: retry,
    // A command for a primary that just died is retried (after a slot refresh) this often, up
    // to 16 times, then fails: about as long as a failover takes with a short node timeout.
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    redisOptions: { maxRetriesPerRequest: 1, connectionName: 'chat-pub' },
  })
}

/**
 * The subscriber connection. On one server its subscriptions are re-issued by the broker after
 * a reconnect (not by ioredis). On a cluster ioredis keeps one subscriber per primary
 * (`shardedSubscribers`) and moves the channels of a failed primary to its successor itself.
 */
export function subscriberClient(target: RedisTarget): RedisClient {
  if ('url' in target) {
    return new Redis(target.url, {
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      retryStrategy: retry,
      enableOfflineQueue: false,
      autoResubscribe: false,
      connectionName: 'chat-sub',
    })
  }
  return new Cluster(target.clusterNodes, {
    lazyConnect: true,
    shardedSubscribers: true,
    clusterRetryStrategy: retry,
    redisOptions: { maxRetriesPerRequest: 1, connectionName: 'chat-sub' },
  })
}

/** Each node of a cluster, or the one server: what a key scan must visit. */
export function scanTargets(client: RedisClient): Redis[] {
  return client instanceof Cluster ? client.nodes('master') : [client]
}
