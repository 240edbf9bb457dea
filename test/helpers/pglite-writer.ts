import { loadConfig } from '../../src/config/config.js'
import { openDatabase } from '../../src/store/db.js'
import { createServices, memoryInfrastructure } from '../../src/wiring.js'

/**
 * Child process of the embedded-database durability test: opens the on-disk PGlite in argv[2] as
 * the server does, sends argv[3] messages, prints what PostgreSQL runs with and how many were
 * acknowledged, then waits to be killed.
 */
const [dataDir = '', count = '0'] = process.argv.slice(2)
const database = await openDatabase({ dataDir })
await database.migrate()
const config = loadConfig({
  NODE_ENV: 'test',
  JWT_SECRET: 'x'.repeat(32),
  RATE_LIMITS: 'off',
  DATA_DIR: dataDir,
})
const services = createServices(config, database, memoryInfrastructure(config))
const user = (n: string) =>
  services.users.create({ email: `${n}@durability.invalid`, password: 'Durab1lity!', fullName: n })
const [a, b] = [await user('a'), await user('b')]
const conv = (await services.conversations.openDirect(a.id, b.id)).conversation.id
let acked = 0
for (let i = 0; i < Number(count); i++) {
  await services.messages.send(a.id, conv, `m${i}`)
  acked++
}
const fsync = await database.db.execute('show fsync')
process.stdout.write(`${JSON.stringify({ acked, conv, settings: fsync })}\n`)
setInterval(() => {}, 1000)
