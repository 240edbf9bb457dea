import { afterAll } from 'vitest'
import { recordCoverage } from './contract.js'
import { frameContract } from './frame-contract.js'

// Runs after each test file's own afterAll hooks (vitest runs them last-registered first): every
// frame its sockets exchanged has been checked against docs/asyncapi.yaml by then.
afterAll(() => {
  if (frameContract.counts['client frames'] + frameContract.counts['server frames'] === 0) return
  recordCoverage('ws', frameContract.counts)
  const found = [...new Set(frameContract.violations.splice(0))]
  if (found.length > 0) throw new Error(`frames broke docs/asyncapi.yaml:\n${found.join('\n')}`)
})
