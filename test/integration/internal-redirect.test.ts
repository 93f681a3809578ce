import { internalRedirect } from '../../source/backends/internal-redirect.ts'
import { offloadSuite } from '../helpers/offload-suite.ts'

// Plain HTTP proxies pass a 200 + Location through to the client (reference/proxies.md §11); Caddy
// honours it with a handle_response matcher on status 200 + Location, which `koa-downloads config
// caddy` generates for internalRedirect() rules. Caddy uses the value raw, while the CGI convention
// (RFC 3875 §6.3.2) percent-encodes it: only names that need no encoding get through.
offloadSuite({
  server: 'caddy',
  label: 'internalRedirect via caddy',
  offloadHeader: 'Location',
  rules: ({ protectedDir }) => [internalRedirect({ sourceDir: protectedDir, destinationUrl: '/protected/' })],
  encodedNamesUnsupported: 'Caddy does not percent-decode the Location value; use caddy() for such names'
})
