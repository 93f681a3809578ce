import { lighttpd } from '../../source/backends/lighttpd.ts'
import { offloadSuite } from '../helpers/offload-suite.ts'

// The shared suite (test/helpers/offload-suite.ts) runs every case against this server.
offloadSuite({
  server: 'lighttpd',
  label: 'lighttpd',
  offloadHeader: 'X-Sendfile',
  appValidators: 'the client gets the app\'s ETag and Last-Modified, which lighttpd answers conditionals with',
  rules: ({ protectedDir }) => [lighttpd({ sourceDir: protectedDir, destinationDir: protectedDir })]
})

