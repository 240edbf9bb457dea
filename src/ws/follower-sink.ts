/** What a follower (ws/follower.ts) needs from its socket. */
export interface FollowerSink {
  send(frame: string): void
  /** A replayed frame: may resolve once written, to pace long replays. */
  sendPaced(frame: string): Promise<void> | void
  close(code: number, reason: string): void
  reportFailure(err: unknown): void
}
