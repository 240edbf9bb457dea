/**
 * The closed lists of the moderation API (docs/moderation.md), shared by the route schemas and
 * the store's column types.
 */
export const REPORT_REASONS = [
  'spam',
  'harassment',
  'hate',
  'violence',
  'sexual',
  'illegal',
  'other',
] as const
export type ReportReason = (typeof REPORT_REASONS)[number]

/** How an operator resolves a report. */
export const REPORT_RESOLUTIONS = ['dismiss', 'delete_message', 'suspend_user'] as const
export type ReportResolution = (typeof REPORT_RESOLUTIONS)[number]
