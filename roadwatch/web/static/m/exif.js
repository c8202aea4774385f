// @ts-check
/* What the camera said about where it stood survives the phone's downscaling.
 *
 * forms.js draws every photo on a canvas to make it small; the canvas keeps the pixels and
 * drops the EXIF, and with it the camera's GPS position, the direction it faced
 * (GPSImgDirection), its stated error and the time taken. The platform uses exactly those
 * to place a report (roadwatch/geolocate.py, "A report's photos") and strips them before
 * it stores the picture (roadwatch/store/photos.py). So they are read here from the
 * original and written into the small JPEG as a minimal EXIF block. Nothing else is
 * copied: no maker notes, no thumbnail, no device names, and no Orientation (the canvas
 * has already turned the pixels upright, a copied Orientation would turn them again).
 */

/** @typedef {{tag: number, type: number, count: number, value: Uint8Array}} Entry */
/** @typedef {{little: boolean, ifd0: Entry[], exif: Entry[], gps: Entry[]}} CameraTags */
/** @typedef {import("./state.js").Look} Look */

// GPS IFD: version, latitude (ref, value), longitude (ref, value), time (UTC), direction
// (ref, value), date (UTC), horizontal positioning error.
const GPS_TAGS = new Set([0, 1, 2, 3, 4, 7, 16, 17, 29, 31]);
const EXIF_TAGS = new Set([0x9003, 0x9011]); // DateTimeOriginal, OffsetTimeOriginal
const IFD0_TAGS = new Set([0x0132]); // DateTime (cameras without DateTimeOriginal)
const EXIF_POINTER = 0x8769;
const GPS_POINTER = 0x8825;
/** @type {Record<number, number>} bytes per value of each TIFF type we copy */
const TYPE_SIZE = { 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4 };
const MAX_VALUE_BYTES = 64; // the tags above need at most 24 (a rational triple) or 26 (a date)
const MAX_ENTRIES = 500; // an IFD claiming more is damaged
const SCAN_BYTES = 256 * 1024; // EXIF sits in APP1, before the image data, near the start

/**
 * The tags that place a photo, from an original JPEG; null when it has none (or is not a
 * JPEG, or its EXIF is damaged: the photo is then sent without them, never refused).
 * @param {Blob} file
 * @returns {Promise<CameraTags | null>}
 */
export async function readCameraTags(file) {
  const head = new Uint8Array(await file.slice(0, SCAN_BYTES).arrayBuffer());
  const tiff = exifBlock(head);
  if (!tiff) return null;
  try {
    return parseTiff(tiff);
  } catch (_) {
    return null; // a pointer past the end, a zero-length IFD...: no tags, not an error
  }
}

/**
 * The direction the camera faced (GPSImgDirection, degrees clockwise from north) and its
 * reference (T true north, M magnetic, null unstated), or null: what the platform will
 * weigh once the photo arrives, asked about before the report goes (spot.js).
 * @param {CameraTags | null} tags
 * @returns {Look | null}
 */
export function cameraLook(tags) {
  const dir = tags && tags.gps.find((e) => e.tag === 17 && e.type === 5 && e.count === 1);
  if (!tags || !dir) return null;
  const view = new DataView(dir.value.buffer);
  const den = view.getUint32(4, tags.little);
  const deg = den ? view.getUint32(0, tags.little) / den : NaN;
  if (!(deg >= 0 && deg <= 360)) return null;
  const refTag = tags.gps.find((e) => e.tag === 16 && e.type === 2);
  const ref = refTag ? String.fromCharCode(refTag.value[0]).toUpperCase() : null;
  return { deg, ref: ref === "T" || ref === "M" ? ref : null };
}

/**
 * `jpeg` (a canvas's output) with `tags` in an APP1 EXIF segment after its JFIF header.
 * @param {Blob} jpeg
 * @param {CameraTags | null} tags
 * @returns {Promise<Blob>}
 */
export async function withCameraTags(jpeg, tags) {
  if (!tags) return jpeg;
  const head = new Uint8Array(await jpeg.slice(0, 6).arrayBuffer());
  if (head[0] !== 0xff || head[1] !== 0xd8) return jpeg;
  // JFIF wants its APP0 first; EXIF goes right after it (or after SOI when there is none).
  const at = head[2] === 0xff && head[3] === 0xe0 ? 4 + ((head[4] << 8) | head[5]) : 2;
  return new Blob([jpeg.slice(0, at), exifSegment(tags), jpeg.slice(at)], { type: "image/jpeg" });
}

/**
 * The TIFF bytes of the first APP1 "Exif" segment before the image data.
 * @param {Uint8Array} b
 * @returns {Uint8Array | null}
 */
function exifBlock(b) {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return null;
  let i = 2;
  while (i + 4 <= b.length) {
    if (b[i] !== 0xff) return null;
    const marker = b[i + 1];
    if (marker === 0xff) { i += 1; continue; } // fill byte
    if (marker === 0xda || marker === 0xd9) return null; // image data or the end: no EXIF
    const length = (b[i + 2] << 8) | b[i + 3];
    if (length < 2) return null;
    const start = i + 4;
    const end = i + 2 + length;
    if (marker === 0xe1 && length >= 16 && end <= b.length &&
        String.fromCharCode(...b.subarray(start, start + 6)) === "Exif\0\0") {
      return b.subarray(start + 6, end);
    }
    i = end;
  }
  return null;
}

/**
 * @param {Uint8Array} t the TIFF block
 * @returns {CameraTags | null}
 */
function parseTiff(t) {
  const view = new DataView(t.buffer, t.byteOffset, t.byteLength);
  const order = view.getUint16(0);
  if (order !== 0x4949 && order !== 0x4d4d) return null;
  const little = order === 0x4949;
  if (view.getUint16(2, little) !== 42) return null;
  const ifd0 = readIfd(t, view, view.getUint32(4, little), little);
  /** @param {number} tag */
  const sub = (tag) => {
    // a LONG, as the standard says, or an IFD (type 13), as some cameras write it
    const p = ifd0.find((e) => e.tag === tag && (e.type === 4 || e.type === 13) && e.count === 1);
    if (!p) return [];
    return readIfd(t, view, new DataView(p.value.buffer).getUint32(0, little), little);
  };
  const tags = {
    little,
    ifd0: ifd0.filter((e) => IFD0_TAGS.has(e.tag)),
    exif: sub(EXIF_POINTER).filter((e) => EXIF_TAGS.has(e.tag)),
    gps: sub(GPS_POINTER).filter((e) => GPS_TAGS.has(e.tag)),
  };
  return tags.ifd0.length || tags.exif.length || tags.gps.length ? tags : null;
}

/**
 * The entries of the IFD at `offset`, each with its value's bytes copied (in the block's
 * byte order); entries of other types or longer values are left out.
 * @param {Uint8Array} t
 * @param {DataView} view
 * @param {number} offset
 * @param {boolean} little
 * @returns {Entry[]}
 */
function readIfd(t, view, offset, little) {
  const n = view.getUint16(offset, little);
  if (n > MAX_ENTRIES) return [];
  /** @type {Entry[]} */
  const out = [];
  for (let k = 0; k < n; k++) {
    const at = offset + 2 + 12 * k;
    const tag = view.getUint16(at, little);
    const type = view.getUint16(at + 2, little);
    const count = view.getUint32(at + 4, little);
    const size = (TYPE_SIZE[type] || 0) * count;
    if (!size || size > MAX_VALUE_BYTES) continue;
    const from = size <= 4 ? at + 8 : view.getUint32(at + 8, little);
    if (from + size > t.length) continue;
    out.push({ tag, type, count, value: t.slice(from, from + size) });
  }
  return out;
}

/**
 * An APP1 segment holding `tags` as a TIFF block in their own byte order: IFD0 (with the
 * pointers), the Exif IFD, the GPS IFD, then the values longer than four bytes.
 * @param {CameraTags} tags
 * @returns {Uint8Array<ArrayBuffer>}
 */
function exifSegment(tags) {
  const ifdSize = (/** @type {number} */ n) => 2 + 12 * n + 4;
  const pointers = (tags.exif.length ? 1 : 0) + (tags.gps.length ? 1 : 0);
  const ifd0At = 8;
  const exifAt = ifd0At + ifdSize(tags.ifd0.length + pointers);
  const gpsAt = exifAt + (tags.exif.length ? ifdSize(tags.exif.length) : 0);
  let dataAt = gpsAt + (tags.gps.length ? ifdSize(tags.gps.length) : 0);
  const long = [...tags.ifd0, ...tags.exif, ...tags.gps].filter((e) => e.value.length > 4);
  const size = dataAt + long.reduce((sum, e) => sum + e.value.length + (e.value.length % 2), 0);
  const tiff = new Uint8Array(size);
  const view = new DataView(tiff.buffer);
  const little = tags.little;
  view.setUint16(0, little ? 0x4949 : 0x4d4d);
  view.setUint16(2, 42, little);
  view.setUint32(4, ifd0At, little);
  /**
   * @param {number} tag
   * @param {number} value
   * @returns {Entry}
   */
  const pointer = (tag, value) => {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, value, little);
    return { tag, type: 4, count: 1, value: bytes };
  };
  const ifd0 = [...tags.ifd0];
  if (tags.exif.length) ifd0.push(pointer(EXIF_POINTER, exifAt));
  if (tags.gps.length) ifd0.push(pointer(GPS_POINTER, gpsAt));
  /**
   * @param {number} at
   * @param {Entry[]} entries
   */
  const writeIfd = (at, entries) => {
    const sorted = [...entries].sort((a, b) => a.tag - b.tag); // TIFF: ascending tags
    view.setUint16(at, sorted.length, little);
    sorted.forEach((e, k) => {
      const p = at + 2 + 12 * k;
      view.setUint16(p, e.tag, little);
      view.setUint16(p + 2, e.type, little);
      view.setUint32(p + 4, e.count, little);
      if (e.value.length <= 4) {
        tiff.set(e.value, p + 8);
      } else {
        view.setUint32(p + 8, dataAt, little);
        tiff.set(e.value, dataAt);
        dataAt += e.value.length + (e.value.length % 2); // values start on a word boundary
      }
    });
    view.setUint32(at + 2 + 12 * sorted.length, 0, little); // no next IFD
  };
  writeIfd(ifd0At, ifd0);
  if (tags.exif.length) writeIfd(exifAt, tags.exif);
  if (tags.gps.length) writeIfd(gpsAt, tags.gps);
  const length = 2 + 6 + tiff.length;
  const segment = new Uint8Array(2 + length);
  segment.set([0xff, 0xe1, length >> 8, length & 0xff]);
  segment.set([0x45, 0x78, 0x69, 0x66, 0, 0], 4); // "Exif\0\0"
  segment.set(tiff, 10);
  return segment;
}
