import type { Readable } from 'node:stream'

/**
 * Where attachment bytes live, declared here and implemented in `storage/` (local disk for the
 * embedded default, S3-compatible for production). Bytes never pass through the chat server's
 * memory: clients upload and download with presigned URLs; the server only looks at sizes and at
 * an image's first bytes.
 */

/** How a client uploads: send the file as the body of `method url` with these headers. */
export interface UploadTarget {
  url: string
  method: 'PUT'
  headers: Record<string, string>
}

export interface UploadOptions {
  contentType: string
  /** The exact size the client declared; the URL accepts no other length. */
  size: number
  expiresAt: Date
}

export interface DownloadOptions {
  filename: string
  contentType: string
  /** `attachment` for anything but safe image types, so a browser never renders a served file. */
  disposition: 'inline' | 'attachment'
  expiresInSec: number
}

export interface ObjectStorage {
  readonly kind: 'local' | 's3'
  presignUpload(key: string, opts: UploadOptions): Promise<UploadTarget>
  presignDownload(key: string, opts: DownloadOptions): Promise<string>
  /** The stored object's size in bytes (a HEAD); undefined when there is no such object. */
  size(key: string): Promise<number | undefined>
  /** Up to `bytes` from the start of the object (an image header); empty when there is none. */
  readStart(key: string, bytes: number): Promise<Buffer>
  /** Stores a small object the server made itself (a thumbnail). */
  put(key: string, body: Buffer, contentType: string): Promise<void>
  /** Deletes the objects; a missing one is not an error, so a retry is safe. */
  delete(keys: string[]): Promise<void>
  /** Present when the server itself answers the presigned URLs (the local disk storage). */
  readonly server?: SignedObjectServer
}

/** A download the local storage serves: stream it with these headers. */
export interface ServedObject {
  body: Readable
  size: number
  contentType: string
  contentDisposition: string
}

/**
 * The presigned URLs of a storage that has no server of its own: `http/storage-routes.ts` hands
 * it the request, it checks the signature and expiry (HMAC), streams the body to disk with a size
 * cap, and refuses with an AppError.
 */
export interface SignedObjectServer {
  /** Path of the route the URLs point to, under the app's origin. */
  readonly path: string
  receive(query: Record<string, string>, contentLength: number | undefined, body: Readable): Promise<void>
  open(query: Record<string, string>): Promise<ServedObject>
}
