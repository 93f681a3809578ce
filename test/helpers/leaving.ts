import { rawRequest } from './file-contract.ts'
import type { RawResponse } from './file-contract.ts'

/**
 * Two clients of one URL: the first leaves 50 ms into its request (while the server still waits on
 * its storage or origin), the second starts 20 ms after it and stays. Resolves with whether the
 * first saw its request fail, and the second's whole response.
 */
export async function leavingBesideStaying (url: string, headers: Record<string, string> = {}): Promise<{ leftWithError: boolean, stayed: RawResponse }> {
  const leaving = new AbortController()
  const left = fetch(url, { headers, signal: leaving.signal }).then(() => false, () => true)
  await new Promise((resolve) => setTimeout(resolve, 20))
  const staying = rawRequest(url, { headers })
  await new Promise((resolve) => setTimeout(resolve, 30))
  leaving.abort()
  return { leftWithError: await left, stayed: await staying }
}
