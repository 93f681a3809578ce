import { debuglog } from 'node:util'

/** `NODE_DEBUG=koa-downloads` prints what was decided and why (which range, why 304, which rule). */
export const debug = debuglog('koa-downloads')
