import { caddy } from '../../source/backends/caddy.ts'
import { offloadSuite } from '../helpers/offload-suite.ts'

offloadSuite({
  server: 'caddy',
  label: 'caddy',
  offloadHeader: 'X-Accel-Redirect',
  rules: ({ protectedDir }) => [caddy({ sourceDir: protectedDir, destinationUrl: '/protected/' })]
})
