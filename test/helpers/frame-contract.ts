import { readFileSync } from 'node:fs'
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'
import { parse } from 'yaml'

/**
 * Checks WebSocket frames against docs/asyncapi.yaml in both directions. `TestSocket` reports every
 * frame it sends and receives, so every WebSocket test is a contract test:
 * - every server frame must match the declared message of its `type`;
 * - per socket, the server must refuse (an `error` frame with a schema code) exactly the client
 *   frames the document refuses: fewer means it accepted frames the document forbids (unless it
 *   closed the socket for them first), more means it refused frames the document allows.
 * test/helpers/contract-setup.ts fails the test file on any violation.
 */

interface Message {
  name: string
  payload: unknown
}
export interface AsyncApiDocument {
  operations: Record<string, { action: 'send' | 'receive'; messages: { $ref: string }[] }>
  components: { messages: Record<string, Message> }
}

/** `error` codes the server gives a frame that fails its schema (src/ws/connection.ts). */
export const SCHEMA_REFUSALS = new Set(['invalid_frame', 'invalid_json', 'unknown_type'])
/** Close codes by which the server refuses a frame instead of answering it. */
const REFUSING_CLOSES = new Set([1007, 1008, 1009])

export class AsyncApiContract {
  readonly violations: string[] = []
  readonly counts = { 'client frames': 0, 'server frames': 0 }
  private readonly client = new Map<string, ValidateFunction>()
  private readonly server = new Map<string, ValidateFunction>()

  constructor(doc: AsyncApiDocument) {
    const ajv = new Ajv2020({ strict: false, allErrors: true })
    addFormats.default(ajv)
    for (const op of Object.values(doc.operations)) {
      // AsyncAPI 3 speaks from the server's side: it receives what clients send.
      const side = op.action === 'receive' ? this.client : this.server
      for (const { $ref } of op.messages) {
        const message = doc.components.messages[$ref.split('/').at(-1) as string]
        if (!message) throw new Error(`unresolved ${$ref}`)
        side.set(message.name, ajv.compile(message.payload as object))
      }
    }
  }

  /** Whether the document allows a frame a client sends (raw text as sent). */
  allowsClientFrame(text: string): boolean {
    this.counts['client frames']++
    let frame: unknown
    try {
      frame = JSON.parse(text)
    } catch {
      return false
    }
    const type = (frame as { type?: unknown } | null)?.type
    const validate = typeof type === 'string' ? this.client.get(type) : undefined
    return validate?.(frame) === true
  }

  /** Records a violation when a server frame is not a declared message. */
  checkServerFrame(frame: Record<string, unknown>): void {
    this.counts['server frames']++
    const type = String(frame.type)
    const validate = this.server.get(type)
    if (!validate) {
      this.violations.push(`server frame of undeclared type ${type}: ${JSON.stringify(frame)}`)
    } else if (!validate(frame)) {
      const why = (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join(', ')
      this.violations.push(
        `server frame ${type} does not match its schema (${why}): ${JSON.stringify(frame)}`,
      )
    }
  }

  /** At a socket's close: did the server refuse exactly the frames the document refuses? */
  settle(socket: { docRefused: number; serverRefused: number; closeCode: number }): void {
    const { docRefused, serverRefused, closeCode } = socket
    if (serverRefused > docRefused) {
      this.violations.push(`the server refused ${serverRefused - docRefused} frame(s) the document allows`)
    } else if (docRefused > serverRefused && !REFUSING_CLOSES.has(closeCode)) {
      this.violations.push(`the server accepted ${docRefused - serverRefused} frame(s) the document refuses`)
    }
  }
}

/** The committed document, which test/unit/asyncapi.test.ts keeps equal to the generated one. */
export const loadAsyncApi = (): AsyncApiDocument =>
  parse(readFileSync(new URL('../../docs/asyncapi.yaml', import.meta.url), 'utf8')) as AsyncApiDocument

/** The checker every `TestSocket` of a test file reports to. */
export const frameContract = new AsyncApiContract(loadAsyncApi())
