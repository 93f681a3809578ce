import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

/**
 * A request handler that answers the first request on each connection with `answer` and drops any
 * later one unanswered, the connection destroyed under it: what a request meets when it goes out on
 * a kept-alive connection just as its server's idle timer closes it.
 */
export function firstOnEachConnection (answer: (req: IncomingMessage, res: ServerResponse) => void): { handle: (req: IncomingMessage, res: ServerResponse) => void, dropped: () => number } {
  const served = new WeakMap<Socket, number>()
  let dropped = 0
  return {
    handle: (req, res) => {
      const n = (served.get(req.socket) ?? 0) + 1
      served.set(req.socket, n)
      if (n > 1) {
        dropped++
        req.socket.destroy()
        return
      }
      answer(req, res)
    },
    dropped: () => dropped
  }
}
