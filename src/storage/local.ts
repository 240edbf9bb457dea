import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import {
  createReadStream,
  createWriteStream,
  existsSync,
  linkSync,
  mkdirSync,
  readFileSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs'
import { link, mkdir, open, rm, stat, unlink, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { type Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { ConflictError, ForbiddenError, NotFoundError, TooLargeError } from '../errors.js'
import type {
  DownloadOptions,
  ObjectStorage,
  ServedObject,
  SignedObjectServer,
  UploadOptions,
  UploadTarget,
} from '../services/object-storage.js'
import { contentDisposition } from './content-disposition.js'

/** Object keys are ours (`attachments/<conversation>/<id>`), never a client's: anything else is refused. */
const KEY = /^[a-z0-9][a-z0-9._-]*(\/[a-z0-9][a-z0-9._-]*)*$/

export const LOCAL_OBJECT_PATH = '/api/v1/storage/object'

/**
 * The secret the local storage signs its URLs with: derived from JWT_SECRET's current key when it
 * is set; else (development, where the JWT key lives in the database and is loaded later) a random
 * one kept beside the objects, created once. It is written whole to a file of its own and then
 * linked into place, which fails if the key exists: of two processes on one DATA_DIR, the second
 * reads the first's, never a file created but not yet written (an empty key, which `wx` on the
 * key file itself allowed). A key file too short to be one is refused, never used.
 */
export function localStorageSecret(dataDir: string, jwtSecret: string | undefined): string {
  if (jwtSecret !== undefined) return jwtSecret
  const dir = join(dataDir, 'objects')
  const file = join(dir, '.url-signing-key')
  mkdirSync(dir, { recursive: true })
  if (!existsSync(file)) {
    const draft = `${file}.${process.pid}.${randomBytes(6).toString('hex')}`
    writeFileSync(draft, randomBytes(48).toString('base64url'), { flag: 'wx', mode: 0o600 })
    try {
      linkSync(draft, file)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    } finally {
      unlinkSync(draft)
    }
  }
  const key = readFileSync(file, 'utf8')
  if (key.length < MIN_KEY_CHARS) {
    throw new Error(
      `${file} holds no usable key (${key.length} characters): delete it and restart to make a new one`,
    )
  }
  return key
}

/** 48 random bytes in base64url are 64 characters; anything under 32 was cut short. */
const MIN_KEY_CHARS = 32

/**
 * Objects as files under `<DATA_DIR>/objects`, for `npm start` with no other service. The server
 * answers its own presigned URLs (`SignedObjectServer`): each carries its operation, key, expiry,
 * length limit and headers, signed with HMAC-SHA256, so a URL cannot be stretched to another file,
 * a later time or a larger body. Uploads are streamed to a temporary file and cut at the signed
 * length; a finished upload is moved into place, and an object once stored is never overwritten.
 */
export class LocalObjectStorage implements ObjectStorage, SignedObjectServer {
  readonly kind = 'local'
  readonly path = LOCAL_OBJECT_PATH
  readonly server: SignedObjectServer = this
  private readonly root: string
  private readonly key: Buffer

  constructor(
    dataDir: string,
    secret: string,
    private readonly clock: () => number = Date.now,
  ) {
    this.root = join(dataDir, 'objects')
    // A key of its own, derived from the app secret: an upload URL is no token for anything else.
    this.key = createHmac('sha256', secret).update('chat-api local object storage v1').digest()
  }

  async presignUpload(key: string, opts: UploadOptions): Promise<UploadTarget> {
    const query = this.sign({
      op: 'put',
      key: checkedKey(key),
      exp: String(Math.floor(opts.expiresAt.getTime() / 1000)),
      len: String(opts.size),
    })
    return { url: `${this.path}?${query}`, method: 'PUT', headers: { 'content-type': opts.contentType } }
  }

  async presignDownload(key: string, opts: DownloadOptions): Promise<string> {
    const query = this.sign({
      op: 'get',
      key: checkedKey(key),
      exp: String(Math.floor(this.clock() / 1000) + opts.expiresInSec),
      ct: opts.contentType,
      cd: contentDisposition(opts.disposition, opts.filename),
    })
    return `${this.path}?${query}`
  }

  async size(key: string): Promise<number | undefined> {
    try {
      return (await stat(this.file(key))).size
    } catch (err) {
      if (isMissing(err)) return undefined
      throw err
    }
  }

  async readStart(key: string, bytes: number): Promise<Buffer> {
    let handle: Awaited<ReturnType<typeof open>>
    try {
      handle = await open(this.file(key), 'r')
    } catch (err) {
      if (isMissing(err)) return Buffer.alloc(0)
      throw err
    }
    try {
      const buf = Buffer.alloc(bytes)
      const { bytesRead } = await handle.read(buf, 0, bytes, 0)
      return buf.subarray(0, bytesRead)
    } finally {
      await handle.close()
    }
  }

  async put(key: string, body: Buffer): Promise<void> {
    const file = this.file(key)
    await mkdir(dirname(file), { recursive: true })
    await writeFile(file, body)
  }

  async delete(keys: string[]): Promise<void> {
    for (const key of keys) await rm(this.file(key), { force: true })
  }

  async receive(query: Record<string, string>, contentLength: number | undefined, body: Readable) {
    const q = this.verify(query, 'put')
    const limit = Number(q.len)
    if (contentLength !== undefined && contentLength > limit) {
      throw new TooLargeError(`the upload is ${contentLength} bytes; this URL accepts at most ${limit}`)
    }
    const file = this.file(q.key as string)
    if ((await this.size(q.key as string)) !== undefined)
      throw new ConflictError('the file was already uploaded')
    await mkdir(dirname(file), { recursive: true })
    const part = `${file}.${randomBytes(6).toString('hex')}.part`
    const cap = byteCap(limit)
    // pipe() (not pipeline) from the request: on overflow the request is left alone, paused, so
    // the route can still answer 413 before it closes the connection.
    body.pipe(cap)
    // pipe() does not pass on a client that went away: end the file too, or it waits forever.
    body.once('close', () => {
      if (!body.readableEnded) cap.destroy(new Error('the upload was interrupted'))
    })
    try {
      await pipeline(cap, createWriteStream(part, { flags: 'wx' }))
      // link() fails when the object exists: a concurrent upload of the same URL never replaces it.
      await link(part, file)
    } catch (err) {
      body.unpipe(cap)
      body.pause()
      if (isExists(err)) throw new ConflictError('the file was already uploaded')
      throw err
    } finally {
      await unlink(part).catch(() => {})
    }
  }

  async open(query: Record<string, string>): Promise<ServedObject> {
    const q = this.verify(query, 'get')
    const file = this.file(q.key as string)
    const size = await this.size(q.key as string)
    if (size === undefined) throw new NotFoundError('object')
    return {
      body: createReadStream(file),
      size,
      contentType: q.ct ?? 'application/octet-stream',
      contentDisposition: q.cd ?? 'attachment',
    }
  }

  private file(key: string): string {
    return join(this.root, checkedKey(key))
  }

  private sign(params: Record<string, string>): string {
    const sig = this.mac(params)
    return new URLSearchParams({ ...params, sig }).toString()
  }

  private mac(params: Record<string, string>): string {
    const text = Object.keys(params)
      .filter((k) => k !== 'sig')
      .sort()
      .map((k) => `${k}=${params[k]}`)
      .join('\n')
    return createHmac('sha256', this.key).update(text).digest('base64url')
  }

  /** The query's fields when its signature holds, it is for `op` and has not expired; 403 otherwise. */
  private verify(query: Record<string, string>, op: 'put' | 'get'): Record<string, string> {
    const given = Buffer.from(String(query.sig ?? ''))
    const wanted = Buffer.from(this.mac(query))
    if (given.length !== wanted.length || !timingSafeEqual(given, wanted) || query.op !== op) {
      throw new ForbiddenError('the URL signature is not valid')
    }
    if (!(Number(query.exp) * 1000 >= this.clock())) throw new ForbiddenError('the URL has expired')
    if (!KEY.test(query.key ?? '')) throw new ForbiddenError('the URL signature is not valid')
    return query
  }
}

function checkedKey(key: string): string {
  if (!KEY.test(key) || key.includes('..')) throw new Error(`not an object key: ${key}`)
  return key
}

/** Passes bytes through until `limit`; one byte more fails the stream with 413. */
function byteCap(limit: number): Transform {
  let seen = 0
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length
      if (seen > limit) done(new TooLargeError(`the upload exceeds the ${limit} bytes this URL accepts`))
      else done(null, chunk)
    },
  })
}

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT'
const isExists = (err: unknown) => (err as NodeJS.ErrnoException).code === 'EEXIST'
