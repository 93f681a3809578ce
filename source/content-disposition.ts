/**
 * Content-Disposition (RFC 6266 + RFC 8187).
 *
 * The header is pure ASCII by construction: Node's `setHeader` throws for CR, LF, NUL and code points
 * above U+00FF, and a header built by interpolation is how response splitting happens.
 */

// C0 controls, DEL, C1 controls, and the bidi controls that can spoof an extension
// (`invoice\u202Efdp.exe` displays as `invoiceexe.pdf`).
const unsafeChars = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g
// Printable ASCII other than `%`, `"` and `\`: a name made only of these is its own fallback.
const plainName = /^[\x20-\x21\x23-\x24\x26-\x5b\x5d-\x7e]*$/
const combiningMarks = /\p{M}/gu

/**
 * The longest name offered, in UTF-8 bytes. File systems store 255 (ext4, APFS, NTFS in UTF-16
 * units), but a browser first saves to a longer name: Chromium writes `<name>.crdownload` (11
 * bytes more) and cancelled the download of any name over 244 bytes, saving nothing (measured
 * with Chromium 156 on ext4); Firefox adds `.part`, and both add ` (1)` when the name is taken.
 * 240 leaves room for those. A longer name is also useless to the user and makes the header long
 * enough for clients and proxies to refuse the response (Node's client stops at 16 KiB of headers,
 * nginx's `proxy_buffer_size` at 4–8 KiB): its stem is shortened, the extension kept.
 */
const MAX_FILENAME_BYTES = 240

/**
 * The part of `name` usable as a download name: what follows the last `/` or `\`, without control
 * or bidi characters, NFC-normalised (lone surrogates become U+FFFD so it can be UTF-8 encoded),
 * at most MAX_FILENAME_BYTES of UTF-8 (a longer stem is cut between graphemes, the extension kept).
 * `''` when nothing usable remains (`''`, `.`, `..`).
 */
export function sanitizeFilename (name: string): string {
  const slash = Math.max(name.lastIndexOf('/'), name.lastIndexOf('\\'))
  let base = slash === -1 ? name : name.slice(slash + 1)
  if (!plainName.test(base)) {
    base = base.replace(unsafeChars, '').toWellFormed().normalize('NFC')
    if (base.length > MAX_FILENAME_BYTES / 3 && Buffer.byteLength(base) > MAX_FILENAME_BYTES) base = shorten(base)
  } else if (base.length > MAX_FILENAME_BYTES) {
    base = shorten(base)
  }
  return base === '.' || base === '..' ? '' : base
}

// Made on the first name that needs cutting: a Segmenter loads ICU's break-iterator data (about
// 2 MiB of RSS), which no process serving ordinary names needs.
let graphemes: Intl.Segmenter | undefined
/** A name of printable ASCII only. */
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/
/** An extension worth keeping: a dot, then up to 16 characters without another dot or a space. */
const extension = /\.[^.\s]{1,16}$/u

/** `name` cut to MAX_FILENAME_BYTES of UTF-8: whole graphemes of the stem, then the extension. */
function shorten (name: string): string {
  const ext = extension.exec(name)?.[0] ?? ''
  const stem = ext === '' || ext.length === name.length ? name : name.slice(0, -ext.length)
  const kept = stem === name ? '' : ext
  let budget = MAX_FILENAME_BYTES - Buffer.byteLength(kept)
  // Printable ASCII: every character is a grapheme of one byte (no Segmenter, no ICU data loaded).
  if (PRINTABLE_ASCII.test(stem)) return stem.slice(0, budget) + kept
  let out = ''
  graphemes ??= new Intl.Segmenter('en', { granularity: 'grapheme' })
  for (const { segment } of graphemes.segment(stem)) {
    const bytes = Buffer.byteLength(segment)
    if (bytes > budget) {
      // A first grapheme longer than the budget (a letter with hundreds of combining marks): its
      // code points, rather than no stem at all.
      if (out === '') {
        for (const char of segment) {
          if (Buffer.byteLength(char) > budget) break
          out += char
          budget -= Buffer.byteLength(char)
        }
      }
      break
    }
    out += segment
    budget -= bytes
  }
  return out + kept
}

/**
 * The Content-Disposition header for `filename` (sanitised here): `attachment` or `inline`, then
 * `filename="<ASCII fallback>"`, then `filename*=UTF-8''<percent-encoded>` when the fallback is not
 * the name itself. No usable name → just the type.
 */
export function contentDisposition (filename: string | undefined, inline = false): string {
  const type = inline ? 'inline' : 'attachment'
  if (filename === undefined) return type
  const name = sanitizeFilename(filename)
  if (name === '') return type
  // The common case: a plain ASCII name, which needs neither escaping nor filename*.
  if (plainName.test(name)) return `${type}; filename="${name}"`
  // The fallback has no `"` or `\` (asciiFallback), so it needs no escaping; a name with either
  // differs from it and goes in filename* too.
  const fallback = asciiFallback(name)
  const quoted = `${type}; filename="${fallback}"`
  return fallback === name ? quoted : `${quoted}; filename*=UTF-8''${encodeRfc8187(name)}`
}

/**
 * One replacement per code point of the (NFC) name: its compatibility decomposition without
 * combining marks when that is printable ASCII (`é` → `e`, `ﬁ` → `fi`), else `_` (`日` → `_`, and an
 * emoji is one `_`, not two). `%` becomes `_` because some user agents percent-decode `filename`;
 * `/` and `\` (reachable through decompositions such as `℀` → `a/c`) become `_` too, so that the
 * fallback never carries a path; and `"`, which the quoted-string could carry escaped (`\"`), but
 * curl -OJ ends the name at it and saved `He said "hi".txt` under the URL's last segment. A fallback that would be empty, `.` or `..` is `_`, `_`, `__`.
 */
function asciiFallback (name: string): string {
  let out = ''
  for (const char of name) {
    const code = char.codePointAt(0) ?? 0
    if (code < 0x80) {
      out += isFallbackAscii(code) ? char : '_'
      continue
    }
    const decomposed = char.normalize('NFKD').replace(combiningMarks, '')
    if (decomposed === '') continue // a lone combining mark that NFC could not compose
    let ascii = true
    for (let i = 0; i < decomposed.length; i++) {
      if (!isFallbackAscii(decomposed.charCodeAt(i))) { ascii = false; break }
    }
    out += ascii ? decomposed : '_'
  }
  // Never an empty or dot-only fallback (a name of lone combining marks, `..\u0301`): `_` per dot, or one.
  if (out === '') return '_'
  return out === '.' || out === '..' ? out.replace(/\./g, '_') : out
}

function isFallbackAscii (code: number): boolean {
  return code >= 0x20 && code <= 0x7e && code !== 0x22 && code !== 0x25 && code !== 0x2f && code !== 0x5c
}

// RFC 8187 attr-char: ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
const attrChar = new Uint8Array(128)
for (const char of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$&+-.^_`|~') {
  attrChar[char.charCodeAt(0)] = 1
}
const percentByte: string[] = []
for (let b = 0; b < 256; b++) percentByte.push('%' + b.toString(16).toUpperCase().padStart(2, '0'))

/** UTF-8 bytes of `value`, percent-encoded (upper-case hex) except attr-chars. */
function encodeRfc8187 (value: string): string {
  const bytes = Buffer.from(value, 'utf8')
  let out = ''
  for (const byte of bytes) {
    out += byte < 128 && attrChar[byte] === 1 ? String.fromCharCode(byte) : percentByte[byte]
  }
  return out
}
