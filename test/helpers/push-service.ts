import { execFileSync } from 'node:child_process'
import {
  createDecipheriv,
  createECDH,
  createPublicKey,
  type ECDH,
  hkdfSync,
  randomBytes,
  randomUUID,
  verify,
} from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * A push service on 127.0.0.1 (HTTPS, a self-signed certificate made for the test) standing in
 * for FCM or Mozilla's autopush: it checks each request the way one does (VAPID JWT signed with
 * the key in `k`, `aud` its own origin, `exp` within 24 h), and decrypts the payload with the
 * subscription's private key and auth secret (RFC 8291 / RFC 8188 aes128gcm, written here with
 * node:crypto, independently of the web-push library the server uses).
 */

export interface ReceivedPush {
  /** The fake browser it was sent to. */
  browser: FakeBrowser
  headers: Record<string, string | string[] | undefined>
  /** The decrypted payload, parsed. */
  payload: Record<string, unknown>
  vapid: { publicKey: string; claims: { aud: string; exp: number; sub: string } }
}

/** A browser's push subscription: its P-256 key pair and auth secret, as a real one makes them. */
export class FakeBrowser {
  readonly ecdh: ECDH = createECDH('prime256v1')
  readonly auth = randomBytes(16)
  readonly token = randomUUID()
  /** What the push service answers this browser's pushes with (201 by default). */
  answer: { status: number; headers?: Record<string, string> } = { status: 201 }

  constructor(readonly origin: string) {
    this.ecdh.generateKeys()
  }

  get endpoint(): string {
    return `${this.origin}/push/${this.token}`
  }

  /** `PushSubscription.toJSON()` */
  subscription() {
    return {
      endpoint: this.endpoint,
      expirationTime: null,
      keys: {
        p256dh: this.ecdh.getPublicKey().toString('base64url'),
        auth: this.auth.toString('base64url'),
      },
    }
  }

  decrypt(body: Buffer): Buffer {
    const salt = body.subarray(0, 16)
    const idLength = body.readUInt8(20)
    const senderKey = body.subarray(21, 21 + idLength)
    const record = body.subarray(21 + idLength)
    const secret = this.ecdh.computeSecret(senderKey)
    const info = Buffer.concat([Buffer.from('WebPush: info\0'), this.ecdh.getPublicKey(), senderKey])
    const ikm = Buffer.from(hkdfSync('sha256', secret, this.auth, info, 32))
    const cek = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16))
    const nonce = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12))
    const decipher = createDecipheriv('aes-128-gcm', cek, nonce)
    decipher.setAuthTag(record.subarray(record.length - 16))
    const padded = Buffer.concat([decipher.update(record.subarray(0, record.length - 16)), decipher.final()])
    // The last record ends with the delimiter 0x02, then zero padding.
    let end = padded.length - 1
    while (end >= 0 && padded[end] === 0) end--
    if (padded[end] !== 2) throw new Error('no last-record delimiter')
    return padded.subarray(0, end)
  }
}

/** A self-signed certificate for 127.0.0.1 (openssl, one day). */
function selfSigned(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'push-tls-'))
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-days',
        '1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    )
    return {
      key: readFileSync(join(dir, 'key.pem'), 'utf8'),
      cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

export class FakePushService {
  readonly received: ReceivedPush[] = []
  /** Requests it could not accept (bad VAPID, undecryptable payload): a test fails on any. */
  readonly rejected: string[] = []
  private readonly browsers = new Map<string, FakeBrowser>()

  private constructor(
    private readonly server: Server,
    readonly origin: string,
    /** The certificate to trust (the push channel's `ca`). */
    readonly ca: string,
  ) {}

  static async start(): Promise<FakePushService> {
    const { key, cert } = selfSigned()
    let service: FakePushService | undefined
    const server = createServer({ key, cert }, (req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const answer = service?.handle(req.url ?? '', req.headers, Buffer.concat(chunks)) ?? { status: 500 }
        res.writeHead(answer.status, answer.headers ?? {})
        res.end()
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as AddressInfo
    service = new FakePushService(server, `https://127.0.0.1:${port}`, cert)
    return service
  }

  /** A new browser whose pushes this service accepts. */
  browser(): FakeBrowser {
    const b = new FakeBrowser(this.origin)
    this.browsers.set(b.token, b)
    return b
  }

  /** The pushes a browser received, oldest first. */
  to(browser: FakeBrowser): ReceivedPush[] {
    return this.received.filter((p) => p.browser === browser)
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()))
  }

  private handle(
    url: string,
    headers: Record<string, string | string[] | undefined>,
    body: Buffer,
  ): { status: number; headers?: Record<string, string> } {
    const browser = this.browsers.get(url.replace('/push/', ''))
    if (!browser) return { status: 404 }
    try {
      const vapid = this.checkVapid(String(headers.authorization ?? ''))
      if (headers['content-encoding'] !== 'aes128gcm') throw new Error('not aes128gcm')
      const payload = JSON.parse(browser.decrypt(body).toString('utf8')) as Record<string, unknown>
      if (browser.answer.status < 300) {
        this.received.push({ browser, headers, payload, vapid })
      }
      return browser.answer
    } catch (err) {
      this.rejected.push(String(err))
      return { status: 400 }
    }
  }

  /** `vapid t=<JWT>, k=<public key>` (RFC 8292): ES256 over the header and claims, with the key given. */
  private checkVapid(authorization: string): ReceivedPush['vapid'] {
    const match = /^vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)$/.exec(authorization)
    if (!match?.[1] || !match[2]) throw new Error(`not a VAPID authorization: ${authorization}`)
    const [head, body, signature] = match[1].split('.') as [string, string, string]
    const raw = Buffer.from(match[2], 'base64url')
    const key = createPublicKey({
      key: {
        kty: 'EC',
        crv: 'P-256',
        x: raw.subarray(1, 33).toString('base64url'),
        y: raw.subarray(33).toString('base64url'),
      },
      format: 'jwk',
    })
    const ok = verify(
      'sha256',
      Buffer.from(`${head}.${body}`),
      { key, dsaEncoding: 'ieee-p1363' },
      Buffer.from(signature, 'base64url'),
    )
    if (!ok) throw new Error('VAPID signature does not verify')
    if (JSON.parse(Buffer.from(head, 'base64url').toString()).alg !== 'ES256') throw new Error('not ES256')
    const claims = JSON.parse(Buffer.from(body, 'base64url').toString()) as ReceivedPush['vapid']['claims']
    if (claims.aud !== this.origin) throw new Error(`aud ${claims.aud} is not ${this.origin}`)
    const now = Date.now() / 1000
    if (!(claims.exp > now && claims.exp <= now + 24 * 3600))
      throw new Error(`exp ${claims.exp} out of range`)
    return { publicKey: match[2], claims }
  }
}
