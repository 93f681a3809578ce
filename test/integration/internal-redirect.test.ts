import { internalRedirect } from '../../source/backends/internal-redirect.ts'
import { offloadSuite } from '../helpers/offload-suite.ts'

// Plain HTTP proxies pass a 200 + Location through to the client (reference/proxies.md §11); Caddy
// honours it with a handle_response matcher on status 200 + Location, which `koa-downloads config
// caddy` generates for internalRedirect() rules.
offloadSuite({
  server: 'caddy',
  label: 'internalRedirect via caddy',
  offloadHeader: 'Location',
  rules: ({ protectedDir }) => [internalRedirect({ sourceDir: protectedDir, destinationUrl: '/protected/' })]
})
