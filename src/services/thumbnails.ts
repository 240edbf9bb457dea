/** The longest side of a thumbnail, in pixels. */
export const THUMBNAIL_MAX_SIDE = 320
/** Larger images are not decoded at all (a decompression bomb is refused, not rendered). */
const MAX_INPUT_PIXELS = 50_000_000

/**
 * A WebP thumbnail of an image (the first frame of an animation), at most THUMBNAIL_MAX_SIDE on
 * its longest side, turned upright by its EXIF orientation, metadata stripped. Undefined when the
 * image cannot be decoded.
 */
export async function makeThumbnail(image: Buffer): Promise<Buffer | undefined> {
  // Loaded on first use: the native library costs startup time that most processes never need.
  const { default: sharp } = await import('sharp')
  try {
    return await sharp(image, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'error' })
      .rotate()
      .resize(THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE, { fit: 'inside', withoutEnlargement: true })
      .webp({ quality: 75 })
      .toBuffer()
  } catch {
    return undefined
  }
}
