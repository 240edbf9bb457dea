/**
 * `Content-Disposition` for a download (RFC 6266): an ASCII fallback name in `filename` and the
 * real one, percent-encoded UTF-8, in `filename*`. The name was sanitized when it was stored.
 */
export function contentDisposition(kind: 'inline' | 'attachment', filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_')
  const encoded = encodeURIComponent(filename).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16)}`)
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encoded}`
}
