// The S3 side of the demo: an in-process S3-compatible server (@20minutes/s3rver, which checks
// SigV4 signatures like the real thing) on a loopback port, or your own S3-compatible endpoint
// through S3_ENDPOINT, S3_BUCKET, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY (and S3_REGION).
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import S3rver from '@20minutes/s3rver'
import { Disk } from 'flydrive'
import { S3Driver } from 'flydrive/drivers/s3'

export interface DemoS3 {
  /** `http://host:port` of the S3 API. */
  endpoint: string
  bucket: string
  disk: Disk
  /** Whether the demo started this server itself (else it came from S3_ENDPOINT). */
  embedded: boolean
  put: (key: string, body: string, contentType: string) => Promise<void>
  stop: () => Promise<void>
}

export const s3Help = `S3 column: set S3_ENDPOINT (e.g. http://127.0.0.1:9000), S3_BUCKET, S3_ACCESS_KEY_ID,
S3_SECRET_ACCESS_KEY (and S3_REGION, default us-east-1) to point the demo at an S3-compatible server.`

/** Starts (or connects to) the S3 server; rejects after `timeout` ms so the demo can go on without it. */
export async function startS3 (timeout = 5000): Promise<DemoS3> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`the S3 server did not start within ${timeout} ms`)) }, timeout)
  })
  try {
    return await Promise.race([process.env.S3_ENDPOINT !== undefined ? external(process.env.S3_ENDPOINT) : embedded(), deadline])
  } finally {
    clearTimeout(timer)
  }
}

async function embedded (): Promise<DemoS3> {
  const directory = await mkdtemp(join(tmpdir(), 'kd-demo-s3-'))
  const bucket = 'demo'
  const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true, configureBuckets: [{ name: bucket, configs: [] }] })
  const { port } = await server.run()
  const connection = connect(`http://127.0.0.1:${port}`, bucket, { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, 'us-east-1')
  return {
    ...connection,
    embedded: true,
    stop: async () => {
      connection.client.destroy()
      await server.close()
      await rm(directory, { recursive: true, force: true })
    }
  }
}

async function external (endpoint: string): Promise<DemoS3> {
  const { S3_BUCKET: bucket, S3_ACCESS_KEY_ID: accessKeyId, S3_SECRET_ACCESS_KEY: secretAccessKey } = process.env
  if (bucket === undefined || accessKeyId === undefined || secretAccessKey === undefined) throw new Error(`S3_ENDPOINT is set but not the rest.\n${s3Help}`)
  const connection = connect(endpoint.replace(/\/+$/, ''), bucket, { accessKeyId, secretAccessKey }, process.env.S3_REGION ?? 'us-east-1')
  return { ...connection, embedded: false, stop: async () => { connection.client.destroy() } }
}

function connect (endpoint: string, bucket: string, credentials: { accessKeyId: string, secretAccessKey: string }, region: string): Omit<DemoS3, 'embedded' | 'stop'> & { client: S3Client } {
  const config = { endpoint, region, forcePathStyle: true, credentials }
  const client = new S3Client(config)
  // The driver gets the config, not the client, so that the adapter knows the public URL without
  // I/O (the path-style `<endpoint>/<bucket>/<key>` that the nginx rule matches).
  const disk = new Disk(new S3Driver({ ...config, bucket, visibility: 'private', supportsACL: false }))
  return {
    endpoint,
    bucket,
    disk,
    client,
    put: async (key, body, contentType) => {
      // Straight to the SDK: flydrive's key normaliser refuses names like `data set (v2).json`.
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.from(body), ContentType: contentType }))
    }
  }
}
