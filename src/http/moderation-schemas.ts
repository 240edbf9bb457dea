import Type, { type TSchema } from 'typebox'
import { AttachmentSchema } from '../protocol/message.js'
import { REPORT_REASONS, REPORT_RESOLUTIONS } from '../protocol/moderation.js'
import { Page, PrivateUser, Uuid } from './schemas.js'

/** Schemas of the moderation and admin routes (docs/moderation.md). */
const Timestamp = Type.String({ format: 'date-time' })
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()])

export const ReportReason = Type.Enum(REPORT_REASONS, { description: 'Why the message is reported' })
export const ReportResolution = Type.Enum(REPORT_RESOLUTIONS, {
  description:
    '`dismiss`: no action; `delete_message`: delete the message for everyone; `suspend_user`: suspend its sender',
})

const MessageSnapshot = Type.Object(
  {
    seq: Type.Integer(),
    sender_id: Nullable(Uuid),
    content: Type.String(),
    attachments: Type.Array(Type.Omit(AttachmentSchema, ['url', 'thumbnail_url'])),
    created_at: Timestamp,
    edited_at: Nullable(Timestamp),
    deleted_at: Nullable(Timestamp),
  },
  { $id: 'MessageSnapshot', description: 'The message as it was when reported' },
)

export const Report = Type.Object(
  {
    id: Uuid,
    conversation_id: Uuid,
    message_id: Uuid,
    reporter_id: Nullable(Uuid),
    reason: ReportReason,
    note: Nullable(Type.String()),
    status: Type.Union([Type.Literal('open'), Type.Literal('resolved')]),
    resolution: Nullable(ReportResolution),
    resolved_by: Nullable(Uuid),
    resolved_at: Nullable(Timestamp),
    created_at: Timestamp,
    message: MessageSnapshot,
  },
  { $id: 'Report' },
)
export const ReportPage = Page(Report, 'ReportPage')

export const AdminUser = Type.Object(
  {
    ...PrivateUser.properties,
    suspended_at: Nullable(Timestamp),
  },
  { $id: 'AdminUser', description: 'An account as operators see it' },
)
export const AdminUserPage = Page(AdminUser, 'AdminUserPage')

export const AuditEntry = Type.Object(
  {
    id: Uuid,
    actor_id: Uuid,
    action: Type.String({
      description:
        'report.resolve, user.suspend, user.unsuspend, message.delete, member.ban, member.unban (docs/moderation.md)',
    }),
    target_type: Type.String({ description: 'user, message or report' }),
    target_id: Uuid,
    details: Type.Record(Type.String(), Type.Unknown()),
    created_at: Timestamp,
  },
  { $id: 'AuditEntry' },
)
export const AuditPage = Page(AuditEntry, 'AuditPage')

export const Ban = Type.Object(
  { user_id: Uuid, full_name: Type.String(), banned_by: Nullable(Uuid), created_at: Timestamp },
  { $id: 'Ban' },
)
export const BanPage = Page(Ban, 'BanPage')

export const Limit = Type.Integer({ minimum: 1, maximum: 100, default: 20, format: 'int32' })
export const Cursor = Type.Optional(Type.String({ maxLength: 512 }))
