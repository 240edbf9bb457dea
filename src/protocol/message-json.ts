import type { MessageView } from './message.js'

const texts = new WeakMap<MessageView, string>()

/**
 * A message's JSON, made once per message object. Its `message.new` frame, the sender's
 * `message.ack` and its broker envelope all embed this same text, so a send costs one
 * `JSON.stringify` of the message instead of three (issue 17: the message was serialized for the
 * envelope, the frame and the ack apart).
 */
export function messageJson(message: MessageView): string {
  let s = texts.get(message)
  if (s === undefined) {
    s = JSON.stringify(message)
    texts.set(message, s)
  }
  return s
}
