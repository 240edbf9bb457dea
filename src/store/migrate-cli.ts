import { loadConfig, loadDotEnv } from '../config/config.js'
import { openDatabase } from './db.js'

// `npm run db:migrate`: applies pending migrations to DATABASE_URL, or to the PGlite store in DATA_DIR.
loadDotEnv()
const config = loadConfig()
const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir })
await database.migrate()
console.log(`migrations applied to ${database.describe}`)
await database.close()
