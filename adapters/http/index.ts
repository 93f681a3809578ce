export { HttpFile } from './http-file.ts'
export type { HttpFileOptions } from './http-file.ts'
