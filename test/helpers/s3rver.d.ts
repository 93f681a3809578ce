// Types for the parts of @20minutes/s3rver 5.0.0 the S3 test helper uses (the package ships none).
declare module '@20minutes/s3rver' {
  interface S3rverOptions {
    address?: string
    port?: number
    directory?: string
    silent?: boolean
    allowMismatchedSignatures?: boolean
    configureBuckets?: Array<{ name: string, configs: unknown[] }>
  }
  export default class S3rver {
    constructor (options: S3rverOptions)
    run (): Promise<{ address: string, port: number }>
    close (): Promise<void>
  }
}
