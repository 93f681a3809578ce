import { lighttpd } from '../../source/backends/lighttpd.ts'
import { offloadSuite } from '../helpers/offload-suite.ts'

offloadSuite({
  server: 'lighttpd',
  label: 'lighttpd',
  offloadHeader: 'X-Sendfile',
  rules: ({ protectedDir }) => [lighttpd({ sourceDir: protectedDir, destinationDir: protectedDir })]
})
