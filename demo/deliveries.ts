// The columns of the demo's table: who sends the bytes. Each proxy column has its own offload rules,
// applied per route with downloads({ rules }); `koa-downloads config <server>` renders the matching
// server configuration from the same rules (see /config/<server>).
import { apache, caddy, internalRedirect, lighttpd, nginx } from '../source/index.ts'
import type { OffloadRule } from '../source/index.ts'
import type { ServerName } from '../source/server-config.ts'
import type { DemoEnv } from './sources.ts'

export type DeliveryId = 'node' | 'nginx' | 'apache' | 'lighttpd' | 'caddy' | 'internal-redirect' | 'presigned'

export interface DemoDelivery {
  id: DeliveryId
  label: string
  about: string
  /** The server that executes this column's offload responses (undefined: Node or the browser). */
  server?: ServerName | undefined
  rules: (env: DemoEnv) => OffloadRule[]
}

// The proxies' internal locations. The app never serves these paths itself.
export const PROTECTED = '/_protected/'
export const ORIGIN = '/_origin/'
export const REMOTE = '/_remote/'
export const PRIVATE = '/_private/'

export const deliveries: readonly DemoDelivery[] = [
  {
    id: 'node',
    label: 'Streamed by Node',
    about: 'serve() streams the bytes itself: Range (single and multipart), If-None-Match/If-Modified-Since, HEAD.',
    rules: () => []
  },
  {
    id: 'nginx',
    label: 'nginx',
    about: 'X-Accel-Redirect to an internal location; remote files through /_origin/, presigned S3 URLs through /_remote/.',
    server: 'nginx',
    rules: (env) => [
      nginx({ sourceDir: env.filesDir, destinationUrl: `${PROTECTED}files/` }),
      nginx({ sourceDir: env.storageDir, destinationUrl: `${PROTECTED}storage/` }),
      nginx({ sourceUrl: `${env.originUrl}files/`, destinationUrl: ORIGIN }),
      ...(env.s3 === undefined ? [] : [nginx({ remote: true, sourceUrl: `${env.s3.endpoint}/${env.s3.bucket}/`, destinationUrl: REMOTE })])
    ]
  },
  {
    id: 'apache',
    label: 'Apache',
    about: 'X-Sendfile with the raw path, for mod_xsendfile (local files only), with the file\'s ETag and Last-Modified.',
    server: 'apache',
    rules: (env) => [
      apache({ sourceDir: env.filesDir, destinationDir: env.filesDir }),
      apache({ sourceDir: env.storageDir, destinationDir: env.storageDir })
    ]
  },
  {
    id: 'lighttpd',
    label: 'lighttpd',
    about: 'X-Sendfile with a percent-encoded path, for mod_proxy\'s x-sendfile (local files only).',
    server: 'lighttpd',
    rules: (env) => [
      lighttpd({ sourceDir: env.filesDir, destinationDir: env.filesDir }),
      lighttpd({ sourceDir: env.storageDir, destinationDir: env.storageDir })
    ]
  },
  {
    id: 'caddy',
    label: 'Caddy',
    about: 'A header that a reverse_proxy handle_response block matches, then file_server (or reverse_proxy for the origin).',
    server: 'caddy',
    rules: (env) => [
      caddy({ sourceDir: env.filesDir, destinationUrl: `${PROTECTED}files/` }),
      caddy({ sourceDir: env.storageDir, destinationUrl: `${PROTECTED}storage/` }),
      caddy({ sourceUrl: `${env.originUrl}files/`, destinationUrl: ORIGIN })
    ]
  },
  {
    id: 'internal-redirect',
    label: 'Internal redirect',
    about: 'Location + 200 (the CGI local redirect of mod_wsgi and SCGI): the gateway serves the local URL itself. Caddy executes it too, but only for names that need no percent-encoding.',
    server: 'caddy',
    rules: (env) => [
      internalRedirect({ sourceDir: env.filesDir, destinationUrl: `${PRIVATE}files/` }),
      internalRedirect({ sourceDir: env.storageDir, destinationUrl: `${PRIVATE}storage/` })
    ]
  },
  {
    id: 'presigned',
    label: 'Presigned redirect',
    about: '302 to a short-lived signed URL of the object store: the browser fetches the bytes from S3 itself.',
    rules: () => []
  }
]

export function findDelivery (id: string | undefined): DemoDelivery | undefined {
  return deliveries.find((delivery) => delivery.id === id)
}

/** The rules one server executes when it runs in front of the demo (Caddy also takes the internal redirects). */
export function rulesFor (server: ServerName, env: DemoEnv): OffloadRule[] {
  return deliveries.filter((d) => d.server === server).flatMap((d) => d.rules(env))
}
