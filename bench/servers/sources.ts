// The remote sources the bench serves besides local files, when the runner started them:
// S3 (s3rver) objects under /files/s3/<key> and an HTTP origin under /files/remote/<name>.
import type { S3Client } from '@aws-sdk/client-s3'

export interface RemoteSources { s3: { client: S3Client, bucket: string } | undefined, origin: string | undefined }

/** Imports the S3 SDK only when an S3 endpoint is configured. */
export async function remoteSources (): Promise<RemoteSources> {
  const endpoint = process.env.S3_ENDPOINT
  const bucket = process.env.S3_BUCKET
  const origin = process.env.ORIGIN_URL
  if (endpoint === undefined || bucket === undefined) return { s3: undefined, origin }
  const { S3Client } = await import('@aws-sdk/client-s3')
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, maxAttempts: 1 })
  return { s3: { client, bucket }, origin }
}
