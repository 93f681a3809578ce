import test from 'ava'
import { DownloadError } from '../../source/errors.ts'
import { isAbort, storageError } from '../../adapters/flydrive/storage-error.ts'
import { keyProblem } from '../../adapters/flydrive/storage-key.ts'

const codeOf = (error: unknown): string | undefined => (error as { code?: string }).code

const sdkError = (name: string, status: number): Error => Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } })

test('storage errors: missing objects of every storage → E_NOT_FOUND', (t) => {
  t.is(codeOf(storageError(sdkError('NoSuchKey', 404), 'x')), 'E_NOT_FOUND')
  t.is(codeOf(storageError(sdkError('NotFound', 404), 'x')), 'E_NOT_FOUND')
  t.is(codeOf(storageError(Object.assign(new Error('No such object'), { code: 404 }), 'x')), 'E_NOT_FOUND', 'GCS ApiError')
  t.is(codeOf(storageError(Object.assign(new Error('enoent'), { code: 'ENOENT' }), 'x')), 'E_NOT_FOUND')
  const wrapped = Object.assign(new Error('Cannot get metadata'), { code: 'E_CANNOT_GET_METADATA', cause: sdkError('NotFound', 404) })
  t.is(codeOf(storageError(wrapped, 'x')), 'E_NOT_FOUND', 'flydrive wraps the SDK error')
})

test('storage errors: throttling and this process out of descriptors → E_UNAVAILABLE, timeouts → E_TIMEOUT, changed → E_CHANGED, the rest → E_UPSTREAM', (t) => {
  t.is(codeOf(storageError(sdkError('SlowDown', 503), 'x')), 'E_UNAVAILABLE')
  t.is(codeOf(storageError(sdkError('TooManyRequests', 429), 'x')), 'E_UNAVAILABLE')
  // this process out of descriptors for the SDK's socket (exhausted.test.ts runs it for real)
  t.is(codeOf(storageError(Object.assign(new Error('connect EMFILE 127.0.0.1:9000'), { code: 'EMFILE' }), 'x')), 'E_UNAVAILABLE')
  t.is(codeOf(storageError(Object.assign(new Error('Cannot read'), { code: 'E_CANNOT_READ_FILE', cause: Object.assign(new Error('ENFILE'), { code: 'ENFILE' }) }), 'x')), 'E_UNAVAILABLE', 'wrapped by flydrive')
  t.is(codeOf(storageError(Object.assign(new Error('t'), { code: 'ETIMEDOUT' }), 'x')), 'E_TIMEOUT')
  t.is(codeOf(storageError(Object.assign(new Error('network timeout at: …'), { name: 'FetchError', type: 'request-timeout' }), 'x')), 'E_TIMEOUT', 'node-fetch (the GCS SDK)')
  t.is(codeOf(storageError(Object.assign(new Error('t'), { name: 'TimeoutError' }), 'x')), 'E_TIMEOUT', 'the AWS SDK')
  t.is(codeOf(storageError(Object.assign(new Error('reset'), { name: 'FetchError', type: 'system', code: 'ECONNRESET' }), 'x')), 'E_UPSTREAM')
  t.is(codeOf(storageError(sdkError('PreconditionFailed', 412), 'x')), 'E_CHANGED')
  t.is(codeOf(storageError(sdkError('AccessDenied', 403), 'x')), 'E_UPSTREAM')
  t.is(codeOf(storageError(sdkError('InternalError', 500), 'x')), 'E_UPSTREAM')
  t.is(codeOf(storageError(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }), 'x')), 'E_UPSTREAM')
  // a host name that does not resolve, with descriptors to spare: the storage's address is wrong (exhausted.test.ts: the same code when out of descriptors is a 503)
  t.is(codeOf(storageError(Object.assign(new Error('getaddrinfo ENOTFOUND s3.invalid'), { code: 'ENOTFOUND' }), 'x')), 'E_UPSTREAM')
  t.is(codeOf(storageError('a string', 'x')), 'E_UPSTREAM')
})

test('storage errors: DownloadErrors and aborts pass through untouched', (t) => {
  const own = new DownloadError('E_TIMEOUT', 'mine')
  t.is(storageError(own, 'x'), own)
  const abort = Object.assign(new Error('aborted'), { name: 'AbortError' })
  t.true(isAbort(abort))
  t.is(storageError(abort, 'x'), abort)
})

test('storage keys: traversal, controls, backslashes and absolute keys are refused; real names are not', (t) => {
  for (const key of ['', '/a', 'a/../b', '..', 'a/..', './a', 'a/./b', 'a\\b', 'a\0b', 'a\nb', 'a\x7fb']) t.truthy(keyProblem(key), JSON.stringify(key))
  for (const key of ['a', 'a/b/c.txt', "ünï (1) a+b@c'd%e&f.txt", '..a', 'a..', '...', 'a/.hidden', 'a//b']) t.is(keyProblem(key), undefined, key)
})
