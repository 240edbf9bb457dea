/** WebSocket close codes this server uses. 4000–4999 are application codes. */
export const CloseCode = {
  /** Server shutting down; reconnect to another instance and resume. */
  GoingAway: 1001,
  /** Repeated protocol violations (malformed frames, unknown types). */
  PolicyViolation: 1008,
  /** A frame over WS_MAX_FRAME_BYTES (sent by the ws library itself). */
  MessageTooBig: 1009,
  /** The client read too slowly and its backlog passed WS_MAX_BACKLOG_BYTES; reconnect and resume. */
  TryAgainLater: 1013,
  /** The access token expired and no fresh one arrived in an `auth` frame. */
  Unauthorized: 4401,
  /** The user was removed from the conversation this socket is bound to, or the account was deleted. */
  Forbidden: 4403,
} as const
