import { apache } from '../../source/backends/apache.ts'
import { offloadSuite } from '../helpers/offload-suite.ts'

// The shared suite (test/helpers/offload-suite.ts) runs every case against this server.
offloadSuite({
  server: 'apache',
  label: 'apache',
  offloadHeader: 'X-Sendfile',
  appValidators: 'the client gets the app\'s ETag, never mod_xsendfile\'s constant "0"',
  rules: ({ protectedDir }) => [apache({ sourceDir: protectedDir, destinationDir: protectedDir })]
})

