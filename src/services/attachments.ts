import { imageSize } from 'image-size'
import {
  AppError,
  ConflictError,
  invalid,
  NotFoundError,
  QuotaExceededError,
  RateLimitedError,
  TooLargeError,
  UnavailableError,
  UnsupportedMediaTypeError,
} from '../errors.js'
import { isUuid, newId } from '../lib/ids.js'
import * as store from '../store/attachments.js'
import type { Db } from '../store/db.js'
import { messageByClientMsgId } from '../store/messages.js'
import type { AttachmentMeta, AttachmentRow } from '../store/schema.js'
import { normalizeContentType, SAFE_IMAGE_TYPES, sanitizeFilename } from './attachment-rules.js'
import type { ConversationService } from './conversations.js'
import type { ObjectStorage, UploadTarget } from './object-storage.js'
import type { RateLimiter } from './ports.js'
import { makeThumbnail } from './thumbnails.js'

export interface AttachmentSettings {
  maxBytes: number
  contentTypes: readonly string[]
  /** Bytes one user may keep stored (sent and not yet sent attachments). */
  quotaBytes: number
  /** Upload URLs per user per minute; undefined when RATE_LIMITS=off. */
  perMinute: number | undefined
  uploadTtlSec: number
  downloadTtlSec: number
  /** Attachments not sent within this many seconds are removed by the sweep. */
  unsentTtlSec: number
}

export interface NewAttachment {
  id: string
  upload: UploadTarget
  expires_at: string
}

export const MAX_ATTACHMENTS_PER_MESSAGE = 10
/** Enough of a file to find any supported image's dimensions (JPEG's can follow 64 KiB of EXIF). */
const IMAGE_HEADER_BYTES = 256 * 1024
/** Advisory lock id of the sweep (one instance at a time). */
const SWEEP_LOCK_ID = 72_410_013
const SWEEP_BATCH = 500

/**
 * Attachments: upload URLs handed to members, checks before a message may carry them, download
 * URLs under the message visibility rules, and the removal of objects nobody can reach any more.
 */
export class AttachmentService {
  constructor(
    private readonly db: Db,
    private readonly storage: ObjectStorage,
    private readonly conversations: ConversationService,
    private readonly limiter: RateLimiter,
    private readonly settings: AttachmentSettings,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Member only. Checks size, type, rate and quota, records the attachment, returns where to upload it. */
  async create(
    userId: string,
    conversationId: string,
    input: { filename: string; content_type: string; size: number },
  ): Promise<NewAttachment> {
    if (!isUuid(conversationId)) throw new NotFoundError('conversation')
    await this.conversations.requireMember(userId, conversationId)
    const filename = sanitizeFilename(input.filename)
    const contentType = normalizeContentType(input.content_type)
    const { maxBytes, contentTypes, quotaBytes, perMinute } = this.settings
    if (input.size > maxBytes)
      throw new TooLargeError(`the file is ${input.size} bytes; the limit is ${maxBytes}`)
    if (!contentTypes.includes(contentType)) {
      throw new UnsupportedMediaTypeError(
        `${contentType} is not accepted; accepted: ${contentTypes.join(', ')}`,
      )
    }
    if (perMinute !== undefined) {
      const { count, resetInSec } = await this.limiter.hit(`attachments:${userId}`, 60)
      if (count > perMinute) throw new RateLimitedError(resetInSec)
    }
    const id = newId()
    const storageKey = `attachments/${conversationId}/${id}`
    const expiresAt = new Date(this.clock() + this.settings.uploadTtlSec * 1000)
    const upload = await this.storageCall(() =>
      this.storage.presignUpload(storageKey, { contentType, size: input.size, expiresAt }),
    )
    const row = {
      conversationId,
      id,
      uploaderId: userId,
      filename,
      contentType,
      size: input.size,
      storageKey,
    }
    const result = await this.db.transaction((tx) => store.insertWithinQuota(tx, row, quotaBytes))
    if (!result.inserted) {
      throw new QuotaExceededError(
        `storage quota exceeded: ${result.used} of ${quotaBytes} bytes in use; this file needs ${input.size}`,
      )
    }
    return { id, upload, expires_at: expiresAt.toISOString() }
  }

  /**
   * Checks attachments a message is about to carry, before its transaction: each must be the
   * sender's, in this conversation, unused, and uploaded with the declared size (asked of the
   * storage, not the client); an image's dimensions are read from its stored header. Returns what
   * the message view shows; the claim itself happens in the send transaction. A resend of a
   * message already stored (same client_msg_id) returns an empty list: the writer answers with
   * the stored message.
   */
  async prepare(
    senderId: string,
    conversationId: string,
    ids: string[],
    clientMsgId: string | null,
  ): Promise<AttachmentMeta[]> {
    if (ids.length === 0) return []
    if (!isUuid(conversationId)) throw new NotFoundError('conversation')
    await this.conversations.requireMember(senderId, conversationId)
    if (ids.length > MAX_ATTACHMENTS_PER_MESSAGE) {
      throw invalid('attachment_ids', `at most ${MAX_ATTACHMENTS_PER_MESSAGE} attachments per message`)
    }
    if (new Set(ids).size !== ids.length) throw invalid('attachment_ids', 'must not repeat an attachment')
    if (
      clientMsgId !== null &&
      (await messageByClientMsgId(this.db, conversationId, senderId, clientMsgId))
    ) {
      return []
    }
    const rows = new Map(
      (await store.findAttachments(this.db, conversationId, ids.filter(isUuid))).map((r) => [r.id, r]),
    )
    const checked = ids.map((id) => {
      const row = rows.get(id)
      if (!row || row.uploaderId !== senderId) {
        throw invalid('attachment_ids', `${id} is not an attachment you created in this conversation`)
      }
      if (row.deletedAt) throw invalid('attachment_ids', `${id} has expired; upload the file again`)
      if (row.messageId) throw new ConflictError(`attachment ${id} is already used by another message`)
      return row
    })
    return Promise.all(checked.map((row) => this.verifyStored(row)))
  }

  /**
   * Where a reader downloads it: a presigned URL valid for a few minutes. 404 unless they may read
   * its message. `thumbnail`: images only; made on first request and kept as a second object.
   */
  async downloadUrl(
    userId: string,
    id: string,
    variant: 'original' | 'thumbnail' = 'original',
  ): Promise<string> {
    const row = isUuid(id) ? await store.findVisibleAttachment(this.db, userId, id) : undefined
    if (!row) throw new NotFoundError('attachment')
    if (variant === 'thumbnail') return this.thumbnailUrl(row)
    const inline = SAFE_IMAGE_TYPES.has(row.contentType) && row.width !== null
    return this.storageCall(() =>
      this.storage.presignDownload(row.storageKey, {
        filename: row.filename,
        contentType: inline ? row.contentType : 'application/octet-stream',
        disposition: inline ? 'inline' : 'attachment',
        expiresInSec: this.settings.downloadTtlSec,
      }),
    )
  }

  private async thumbnailUrl(row: AttachmentRow): Promise<string> {
    if (!SAFE_IMAGE_TYPES.has(row.contentType) || row.width === null) throw new NotFoundError('thumbnail')
    const key = row.thumbnailKey ?? (await this.storeThumbnail(row))
    return this.storageCall(() =>
      this.storage.presignDownload(key, {
        filename: `${row.filename.replace(/\.[^.]*$/, '')}.thumb.webp`,
        contentType: 'image/webp',
        disposition: 'inline',
        expiresInSec: this.settings.downloadTtlSec,
      }),
    )
  }

  /**
   * Reads the image (at most ATTACHMENT_MAX_BYTES, the one time the server holds a file), makes
   * the thumbnail and stores it beside it. Two readers at once both make it; the key is the same.
   */
  private async storeThumbnail(row: AttachmentRow): Promise<string> {
    const image = await this.storageCall(() => this.storage.readStart(row.storageKey, row.size))
    const thumbnail = await makeThumbnail(image)
    if (!thumbnail) throw new NotFoundError('thumbnail')
    const key = `${row.storageKey}.thumb.webp`
    await this.storageCall(() => this.storage.put(key, thumbnail, 'image/webp'))
    await store.setThumbnail(this.db, row.conversationId, row.id, key)
    return key
  }

  /**
   * Deletes the objects, then the rows, of attachments marked for removal. A failure leaves them
   * marked: the next sweep tries again, until it is done.
   */
  async remove(refs: store.AttachmentRef[]): Promise<void> {
    if (refs.length === 0) return
    await this.storage.delete(
      refs.flatMap((r) => (r.thumbnailKey ? [r.storageKey, r.thumbnailKey] : [r.storageKey])),
    )
    await store.deleteAttachmentRows(this.db, refs)
  }

  /**
   * The periodic job: marks attachments not sent within the TTL for removal, then removes
   * everything marked (including those of deleted messages whose removal failed). Runs on one
   * instance at a time (an advisory lock); returns undefined when another instance is running it.
   */
  async sweep(): Promise<{ expired: number; removed: number } | undefined> {
    return this.db.transaction(async (tx) => {
      if (!(await store.tryJobLock(tx, SWEEP_LOCK_ID))) return undefined
      const expired = await store.expireUnsent(tx, new Date(this.clock() - this.settings.unsentTtlSec * 1000))
      let removed = 0
      for (;;) {
        const refs = await store.pendingRemoval(tx, SWEEP_BATCH)
        await this.storage.delete(
          refs.flatMap((r) => (r.thumbnailKey ? [r.storageKey, r.thumbnailKey] : [r.storageKey])),
        )
        await store.deleteAttachmentRows(tx, refs)
        removed += refs.length
        if (refs.length < SWEEP_BATCH) return { expired, removed }
      }
    })
  }

  private async verifyStored(row: AttachmentRow): Promise<AttachmentMeta> {
    const size = await this.storageCall(() => this.storage.size(row.storageKey))
    if (size === undefined) throw invalid('attachment_ids', `${row.id} was never uploaded`)
    if (size !== row.size) {
      throw invalid('attachment_ids', `${row.id} is ${size} bytes in storage, not the ${row.size} declared`)
    }
    const meta: AttachmentMeta = {
      id: row.id,
      filename: row.filename,
      content_type: row.contentType,
      size,
      width: null,
      height: null,
    }
    const imageType = SAFE_IMAGE_TYPES.get(row.contentType)
    if (imageType === undefined) return meta
    const head = await this.storageCall(() => this.storage.readStart(row.storageKey, IMAGE_HEADER_BYTES))
    const dims = imageDimensions(head)
    if (!dims || dims.type !== imageType) {
      throw invalid('attachment_ids', `${row.id} is not a readable ${row.contentType} image`)
    }
    return { ...meta, width: dims.width, height: dims.height }
  }

  /** A storage that cannot be reached is a 503 (retry), never a 500. */
  private async storageCall<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call()
    } catch (err) {
      if (err instanceof AppError) throw err
      throw new UnavailableError('object storage is unavailable; retry shortly')
    }
  }
}

function imageDimensions(head: Buffer): { width: number; height: number; type: string } | undefined {
  try {
    const r = imageSize(head)
    if (!r.width || !r.height || !r.type) return undefined
    return { width: r.width, height: r.height, type: r.type }
  } catch {
    return undefined
  }
}
