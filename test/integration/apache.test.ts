import { apache } from '../../source/backends/apache.ts'
import { offloadSuite } from '../helpers/offload-suite.ts'

offloadSuite({
  server: 'apache',
  label: 'apache',
  offloadHeader: 'X-Sendfile',
  rules: ({ protectedDir }) => [apache({ sourceDir: protectedDir, destinationDir: protectedDir })]
})
