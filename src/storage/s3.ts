import type { S3Client } from '@aws-sdk/client-s3'
import type {
  DownloadOptions,
  ObjectStorage,
  UploadOptions,
  UploadTarget,
} from '../services/object-storage.js'
import { contentDisposition } from './content-disposition.js'

export interface S3Settings {
  endpoint: string | undefined
  publicEndpoint?: string | undefined
  bucket: string
  region: string
  accessKeyId: string | undefined
  secretAccessKey: string | undefined
  forcePathStyle: boolean
}

/**
 * Any S3-compatible service (AWS S3, MinIO, R2, GCS interoperability): clients upload and download
 * with presigned URLs, so file bytes never reach the chat server. The upload URL signs the
 * content type and the exact content length, so it accepts no other body; the download URL names
 * the response's content type and disposition.
 */
export class S3ObjectStorage implements ObjectStorage {
  readonly kind = 's3'
  private readonly bucket: string
  /**
   * The SDK and its clients, loaded on first use: the SDK is large, and a process that never
   * touches an attachment (or uses the local storage) should not pay for loading it.
   */
  private loaded: Promise<Sdk> | undefined

  constructor(
    private readonly settings: S3Settings,
    private readonly clock: () => number = Date.now,
  ) {
    this.bucket = settings.bucket
  }

  private sdk(): Promise<Sdk> {
    this.loaded ??= loadSdk(this.settings)
    return this.loaded
  }

  async presignUpload(key: string, opts: UploadOptions): Promise<UploadTarget> {
    const { s3, getSignedUrl, signer } = await this.sdk()
    const now = this.clock()
    const cmd = new s3.PutObjectCommand({
      Bucket: this.bucket,
      Key: key,
      ContentType: opts.contentType,
      ContentLength: opts.size,
    })
    const url = await getSignedUrl(signer, cmd, {
      signingDate: new Date(now),
      expiresIn: Math.max(1, Math.floor((opts.expiresAt.getTime() - now) / 1000)),
      // Signed, so the URL accepts only this length and type.
      signableHeaders: new Set(['content-type', 'content-length']),
    })
    return {
      url,
      method: 'PUT',
      headers: { 'content-type': opts.contentType, 'content-length': String(opts.size) },
    }
  }

  async presignDownload(key: string, opts: DownloadOptions): Promise<string> {
    const { s3, getSignedUrl, signer } = await this.sdk()
    const cmd = new s3.GetObjectCommand({
      Bucket: this.bucket,
      Key: key,
      ResponseContentType: opts.contentType,
      ResponseContentDisposition: contentDisposition(opts.disposition, opts.filename),
    })
    return getSignedUrl(signer, cmd, {
      signingDate: new Date(this.clock()),
      expiresIn: opts.expiresInSec,
    })
  }

  async size(key: string): Promise<number | undefined> {
    const { s3, client } = await this.sdk()
    try {
      const head = await client.send(new s3.HeadObjectCommand({ Bucket: this.bucket, Key: key }))
      return head.ContentLength
    } catch (err) {
      if (err instanceof s3.NotFound || err instanceof s3.NoSuchKey) return undefined
      throw err
    }
  }

  async readStart(key: string, bytes: number): Promise<Buffer> {
    const { s3, client } = await this.sdk()
    try {
      const res = await client.send(
        new s3.GetObjectCommand({ Bucket: this.bucket, Key: key, Range: `bytes=0-${bytes - 1}` }),
      )
      const body = await res.Body?.transformToByteArray()
      return Buffer.from(body ?? new Uint8Array()).subarray(0, bytes)
    } catch (err) {
      if (err instanceof s3.NoSuchKey || err instanceof s3.NotFound) return Buffer.alloc(0)
      throw err
    }
  }

  async put(key: string, body: Buffer, contentType: string): Promise<void> {
    const { s3, client } = await this.sdk()
    await client.send(
      new s3.PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType }),
    )
  }

  async delete(keys: string[]): Promise<void> {
    const { s3, client } = await this.sdk()
    // DeleteObjects takes at most 1,000 keys; deleting a missing key succeeds.
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000)
      const res = await client.send(
        new s3.DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
        }),
      )
      const failed = res.Errors ?? []
      if (failed.length > 0)
        throw new Error(`S3 could not delete ${failed.length} objects: ${failed[0]?.Message}`)
    }
  }

  close(): void {
    void this.loaded?.then(({ client, signer }) => {
      client.destroy()
      if (signer !== client) signer.destroy()
    })
  }
}

interface Sdk {
  s3: typeof import('@aws-sdk/client-s3')
  getSignedUrl: typeof import('@aws-sdk/s3-request-presigner').getSignedUrl
  client: S3Client
  /** Signs URLs for clients (never connects): the public endpoint's host is part of the signature. */
  signer: S3Client
}

async function loadSdk(settings: S3Settings): Promise<Sdk> {
  const [s3, { getSignedUrl }] = await Promise.all([
    import('@aws-sdk/client-s3'),
    import('@aws-sdk/s3-request-presigner'),
  ])
  const client = s3Client(s3, settings, settings.endpoint)
  const signer = settings.publicEndpoint ? s3Client(s3, settings, settings.publicEndpoint) : client
  return { s3, getSignedUrl, client, signer }
}

function s3Client(
  s3: typeof import('@aws-sdk/client-s3'),
  settings: S3Settings,
  endpoint: string | undefined,
): S3Client {
  return new s3.S3Client({
    region: settings.region,
    forcePathStyle: settings.forcePathStyle,
    // Otherwise a presigned PUT carries the checksum of an empty body, and S3 refuses the file.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    ...(endpoint ? { endpoint } : {}),
    ...(settings.accessKeyId && settings.secretAccessKey
      ? { credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey } }
      : {}),
  })
}
