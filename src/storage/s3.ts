import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  NoSuchKey,
  NotFound,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
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
  private readonly client: S3Client
  /** Signs URLs for clients (never connects): the public endpoint's host is part of the signature. */
  private readonly signer: S3Client
  private readonly bucket: string

  constructor(
    settings: S3Settings,
    private readonly clock: () => number = Date.now,
  ) {
    this.bucket = settings.bucket
    this.client = s3Client(settings, settings.endpoint)
    this.signer = settings.publicEndpoint ? s3Client(settings, settings.publicEndpoint) : this.client
  }

  async presignUpload(key: string, opts: UploadOptions): Promise<UploadTarget> {
    const now = this.clock()
    const cmd = new PutObjectCommand({
      Bucket: this.bucket,
      Key: key,
      ContentType: opts.contentType,
      ContentLength: opts.size,
    })
    const url = await getSignedUrl(this.signer, cmd, {
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

  presignDownload(key: string, opts: DownloadOptions): Promise<string> {
    const cmd = new GetObjectCommand({
      Bucket: this.bucket,
      Key: key,
      ResponseContentType: opts.contentType,
      ResponseContentDisposition: contentDisposition(opts.disposition, opts.filename),
    })
    return getSignedUrl(this.signer, cmd, {
      signingDate: new Date(this.clock()),
      expiresIn: opts.expiresInSec,
    })
  }

  async size(key: string): Promise<number | undefined> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }))
      return head.ContentLength
    } catch (err) {
      if (err instanceof NotFound || err instanceof NoSuchKey) return undefined
      throw err
    }
  }

  async readStart(key: string, bytes: number): Promise<Buffer> {
    try {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: `bytes=0-${bytes - 1}` }),
      )
      const body = await res.Body?.transformToByteArray()
      return Buffer.from(body ?? new Uint8Array()).subarray(0, bytes)
    } catch (err) {
      if (err instanceof NoSuchKey || err instanceof NotFound) return Buffer.alloc(0)
      throw err
    }
  }

  async put(key: string, body: Buffer, contentType: string): Promise<void> {
    await this.client.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType }),
    )
  }

  async delete(keys: string[]): Promise<void> {
    // DeleteObjects takes at most 1,000 keys; deleting a missing key succeeds.
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000)
      const res = await this.client.send(
        new DeleteObjectsCommand({
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
    this.client.destroy()
    if (this.signer !== this.client) this.signer.destroy()
  }
}

function s3Client(settings: S3Settings, endpoint: string | undefined): S3Client {
  return new S3Client({
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
