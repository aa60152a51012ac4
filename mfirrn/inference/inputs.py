"""What the :class:`~mfirrn.inference.pipeline.Reconstructor` accepts as an image, boxes and landmarks, checked.

Images (:func:`to_bgr`) become BGR ``uint8`` arrays (H, W, 3), the layout OpenCV's ``cv2.imread`` gives:

* a path (``str`` or ``Path``): read with OpenCV (:func:`read_image`; a phone's HEIC/HEIF photo with libheif, the
  ``pillow-heif`` wheel), upright: a photo stored turned with an EXIF orientation tag (phone cameras), or a HEIF
  photo with its rotation and mirror properties, is turned as viewers show it; 16-bit files and float TIFFs within 0..1
  are scaled to 8 bits; a PNG or WebP with transparency is laid over white, as viewers and web pages show it
  (:func:`over_white`; the colours a file keeps under fully transparent pixels are often streaks of its
  edges); a URL is refused (download it first), so is an empty file; a file its decoder warns about (a JPEG whose
  data libjpeg finds damaged but decodes, a PNG with a malformed colour profile) is read, with an
  :class:`ImageWarning` that names the file and the decoder's message (which the decoder itself would print alone,
  without the file's name, on the process's standard error);
* a PIL image: converted from its mode (RGB, RGBA, L, P, ...) to RGB, then to BGR, transparency laid over white
  (PIL does not apply an EXIF orientation tag: ``PIL.ImageOps.exif_transpose(img)`` first, or pass the path);
* an array: (H, W, 3) is taken as **BGR**, (H, W, 4) as BGRA (laid over white), (H, W) as grey; ``uint8`` as it
  is; other integers and floats within 0..255 are rounded to ``uint8``; floats within 0..1 and anything else are
  refused with the conversion to write. An RGB array (matplotlib, PIL, imageio) must be flipped first:
  ``img[..., ::-1]``.

Every refusal is an :class:`ImageError` (or a :class:`FaceInputError` for boxes and landmarks), both
subclasses of ``ValueError``, with one sentence that names the problem and the fix.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any, Union

import numpy as np

from mfirrn.inference.sources import HEIF_SUFFIXES, MAX_PIXELS, UNREAD_SUFFIXES, too_many_pixels

__all__ = ["ImageError", "ImageWarning", "FaceInputError", "ImageInput", "read_image", "as_bgr", "to_bgr", "over_white",
           "check_boxes", "check_landmarks"]

#: A path, a PIL image or an array (see the module docstring).
ImageInput = Union[str, Path, np.ndarray, Any]
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")  # http://..., also as Path() leaves it (https:/...)


class ImageError(ValueError):
    """An image is missing, unreadable, or not an image the pipeline can take; the message names the fix."""


class ImageWarning(UserWarning):
    """An image was read, but its file is damaged (the message names the file and what the decoder found)."""


class FaceInputError(ValueError):
    """Face boxes or landmarks given to the pipeline are malformed (shape, NaN, empty box); the message names
    the fix."""


def read_image(path: Union[str, Path]) -> np.ndarray:
    """Read an image file as BGR uint8 (H, W, 3); grey images are converted, transparent ones laid over white."""
    import cv2

    text = str(path)
    if _URL.match(text):
        raise ImageError(f"{text}: a URL, not a file; download it first (e.g. urllib.request.urlretrieve(url, "
                         f"'face.jpg')) and pass the file's path")
    path = Path(path)
    if not path.is_file():
        where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
        raise ImageError(f"{path}: no such file{where}; check the path")
    data = np.fromfile(str(path), dtype=np.uint8)
    if not data.size:
        raise ImageError(f"{path}: the file is empty (0 bytes: an interrupted download or copy?); get the file again")
    if path.suffix.lower() in HEIF_SUFFIXES or _is_heif(data):
        return _read_heif(data, path)
    img = _decode(data, path)
    if img is None:  # OpenCV reads 32-bit samples (float TIFF) only at their own depth
        img = _eight_bit(cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH), path)
    if img is None:
        if path.suffix.lower() in UNREAD_SUFFIXES:
            raise ImageError(f"{path}: OpenCV cannot decode {path.suffix} photos; convert it to JPEG or PNG")
        if ends_early(data):
            raise ImageError(f"{path}: the file ends early (truncated: an interrupted download or copy?); get the "
                             f"file again")
        raise ImageError(f"{path}: not a readable image (corrupt or not an image format OpenCV knows)")
    if _has_alpha(data):  # OpenCV's colour reading drops the alpha channel and keeps what lies under it
        bgra = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        if bgra is not None and bgra.ndim == 3 and bgra.shape[2] == 4 and bgra.shape[:2] == img.shape[:2]:
            img = over_white(_eight_bit(bgra, path))
    return img


#: Held while file descriptor 2 is redirected (:func:`_decode`): one thread at a time may move it.
_STDERR_MOVED = threading.Lock()


def _decode(data: np.ndarray, path: Path) -> "np.ndarray | None":
    """``cv2.imdecode`` of an image file's bytes (colour), with the warnings its decoder prints on the process's
    standard error (file descriptor 2: libjpeg's "Corrupt JPEG data: 12 extraneous bytes before marker 0xd9",
    libpng's "libpng warning: iCCP: ...") caught during the call and issued as one :class:`ImageWarning` naming the
    file. While another thread decodes so, this one decodes without catching them (the descriptor is the process's:
    two threads moving it would lose it)."""
    import cv2

    if not _STDERR_MOVED.acquire(blocking=False):
        return cv2.imdecode(data, cv2.IMREAD_COLOR)
    try:
        sys.stderr.flush()
        with tempfile.TemporaryFile() as caught:
            saved = os.dup(2)
            os.dup2(caught.fileno(), 2)
            try:
                img = cv2.imdecode(data, cv2.IMREAD_COLOR)
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            caught.seek(0)
            said = [line.strip() for line in caught.read().decode(errors="replace").splitlines() if line.strip()]
    finally:
        _STDERR_MOVED.release()
    if said and img is not None:
        told = "; ".join(dict.fromkeys(said))
        if bytes(data[:2]) == b"\xff\xd8":
            what = f"damaged JPEG data, read as far as it decodes (libjpeg: {told})"
        else:
            what = f"read, with its decoder's warning ({told})"
        warnings.warn(f"{path}: {what}", ImageWarning, stacklevel=3)
    return img


#: ISO base media file brands of HEIF still images (HEVC-coded: phones' HEIC; ``mif1``/``msf1``: any HEIF)
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")


def _is_heif(data: np.ndarray) -> bool:
    """Whether a file's bytes begin as a HEIF image (an ``ftyp`` box of a HEIF brand), whatever its name.

    >>> _is_heif(np.frombuffer(bytes(4) + b"ftypheic" + bytes(12), np.uint8)), _is_heif(np.zeros(16, np.uint8))
    (True, False)
    """
    head = bytes(data[:12])
    return head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS


def _read_heif(data: np.ndarray, path: Path) -> np.ndarray:
    """A HEIF photo's bytes as BGR uint8 (H, W, 3) with libheif: its primary image, turned and mirrored as its
    properties say (libheif applies them), 10- and 12-bit images scaled to 8 bits, transparency laid over white."""
    try:
        import pillow_heif
    except ImportError:
        raise ImageError(f"{path}: reading HEIC/HEIF photos needs the pillow-heif package (pip install pillow-heif), "
                         f"or convert it to JPEG or PNG") from None
    def undecodable(e: Exception) -> ImageError:
        why = (str(e).strip().splitlines() or [type(e).__name__])[0].rstrip(".")
        return ImageError(f"{path}: libheif cannot decode this HEIC/HEIF photo ({why}): truncated or corrupt? get the "
                          f"file again")

    try:
        heif = pillow_heif.open_heif(data.tobytes(), convert_hdr_to_8bit=True)  # decoded at the first read of its data
    except (ValueError, RuntimeError, OSError, EOFError) as e:
        raise undecodable(e) from None
    if line := too_many_pixels(str(path), *heif.size, MAX_PIXELS):  # from its header, before decoding
        raise ImageError(line)
    try:
        rgb = np.asarray(heif)
    except (ValueError, RuntimeError, OSError, EOFError) as e:
        raise undecodable(e) from None
    if rgb.ndim == 2:
        rgb = rgb[..., None]
    if rgb.shape[2] < 3:  # grey, or grey and alpha
        rgb = np.concatenate([np.repeat(rgb[..., :1], 3, axis=2), rgb[..., 1:]], axis=2)
    bgr = np.ascontiguousarray(rgb[..., [2, 1, 0, 3][:rgb.shape[2]]])
    return over_white(bgr) if bgr.shape[2] == 4 else bgr


def _has_alpha(data: np.ndarray) -> bool:
    """Whether a file's bytes (uint8 array) are a PNG or a WebP that may hold transparent pixels: a PNG with an
    alpha channel (colour types 4 and 6) or a ``tRNS`` chunk, a WebP with its alpha flag set.

    >>> png = lambda kind: np.frombuffer(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(17) + bytes([kind]) + b"..IDAT", np.uint8)
    >>> _has_alpha(png(6)), _has_alpha(png(2)), _has_alpha(np.frombuffer(b"\\xff\\xd8\\xff" + bytes(40), np.uint8))
    (True, False, False)
    """
    head = bytes(data[:64])
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) > 25:
        if head[25] in (4, 6):
            return True
        idat = bytes(data[:1 << 16]).find(b"IDAT")  # the chunks before the pixels: tRNS comes before IDAT
        return b"tRNS" in bytes(data[:idat if idat >= 0 else 1 << 16])
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) > 24:
        if head[12:16] == b"VP8X":
            return bool(head[20] & 0x10)
        if head[12:16] == b"VP8L":  # lossless: 14 + 14 bits of size, then the alpha bit
            return bool((int.from_bytes(head[21:25], "little") >> 28) & 1)
    return False


def over_white(bgra: np.ndarray) -> np.ndarray:
    """BGRA uint8 (H, W, 4) laid over a white background: BGR uint8 (H, W, 3), ``round(c·a + 255·(1 - a))`` with
    ``a`` the alpha over 255; opaque pixels keep their colour exactly, transparent ones become white.

    >>> over_white(np.array([[[10, 20, 30, 255], [10, 20, 30, 0], [0, 0, 0, 128]]], np.uint8)).tolist()
    [[[10, 20, 30], [255, 255, 255], [127, 127, 127]]]
    """
    a = bgra[..., 3:].astype(np.uint32)
    out = (bgra[..., :3].astype(np.uint32) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _eight_bit(img: Any, path: Path) -> Any:
    """A decoded BGR image of another depth as uint8, as OpenCV's 8-bit reading scales it: 16-bit by 1/257,
    floats within 0..1 by 255 (higher floats are refused: radiance, not pixels); ``None`` stays ``None``.

    >>> _eight_bit(np.array([[[0.0, 0.5, 1.0]]], np.float32), Path("x.tif")).tolist()
    [[[0, 128, 255]]]
    """
    if img is None or img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return np.rint(img / 257.0).astype(np.uint8)
    finite = np.isfinite(img)
    lo, hi = (float(img[finite].min()), float(img[finite].max())) if finite.any() else (0.0, 0.0)
    if not np.issubdtype(img.dtype, np.floating) or not finite.all() or lo < 0 or hi > 1:
        raise ImageError(f"{path}: {img.dtype} pixels spanning {lo:g}..{hi:g} (not 0..1): save it as an 8-bit "
                         f"JPEG or PNG, tone-mapped if it holds radiance")
    return np.rint(img * 255.0).astype(np.uint8)


def ends_early(data: np.ndarray) -> bool:
    """Whether a file's bytes (uint8 array) begin as a JPEG or a PNG but lack the marker that ends one (JPEG's
    EOI ``FF D9``, PNG's ``IEND`` chunk): a file cut short, not another format.

    >>> jpeg = np.frombuffer(bytes([0xFF, 0xD8, 0xFF, 0xE0]) + bytes(100) + bytes([0xFF, 0xD9]), np.uint8)
    >>> ends_early(jpeg), ends_early(jpeg[:60]), ends_early(np.frombuffer(b"GIF89a" + bytes(10), np.uint8))
    (False, True, False)
    """
    head, tail = bytes(data[:8]), bytes(data[-1024:])
    if head[:3] == b"\xff\xd8\xff":
        return b"\xff\xd9" not in tail
    if head == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in tail
    return False


def _is_pil(image: Any) -> bool:
    pil = sys.modules.get("PIL.Image")  # a PIL image exists only if PIL was imported
    return pil is not None and isinstance(image, pil.Image)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Pixels as uint8: unchanged, or rounded when every value is a whole-range 0..255 number."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == bool or not np.issubdtype(image.dtype, np.number) or np.iscomplexobj(image):
        raise ImageError(f"image: expected uint8 pixels (BGR, 0..255), got {image.dtype} values; convert with "
                         f"img.astype(np.uint8) from 0..255 values")
    if image.size == 0:
        return image.astype(np.uint8)
    finite = np.isfinite(image)
    if not finite.all():
        raise ImageError(f"image: {int((~finite).sum())} pixels are NaN or infinite; replace them "
                         f"(np.nan_to_num) before passing the image")
    lo, hi = float(image.min()), float(image.max())
    if np.issubdtype(image.dtype, np.floating) and hi <= 1.0:
        raise ImageError(f"image: {image.dtype} pixels within 0..1; pass (img * 255).round().astype(np.uint8) "
                         f"(the pipeline takes 0..255 BGR)")
    if lo < 0 or hi > 255:
        raise ImageError(f"image: {image.dtype} pixels span {lo:g}..{hi:g}, outside 0..255; scale them to 0..255 "
                         f"and pass img.astype(np.uint8)")
    return np.rint(image).astype(np.uint8)


def as_bgr(image: np.ndarray) -> np.ndarray:
    """An in-memory array as BGR uint8 (H, W, 3): (H, W, 3) taken as BGR, (H, W, 4) as BGRA, (H, W) or (H, W, 1)
    as grey; pixel types as in the module docstring.

    >>> as_bgr(np.full((2, 3), 7.0)).shape, as_bgr(np.full((2, 3), 7.0)).dtype
    ((2, 3, 3), dtype('uint8'))
    """
    import cv2

    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] in (1, 3, 4) and image.shape[2] > 4:
        raise ImageError(f"image: shape {image.shape} is channels-first; pass img.transpose(1, 2, 0) "
                         f"(height, width, channels)")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))):
        raise ImageError(f"image: expected (H, W), (H, W, 3) or (H, W, 4) pixels, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"image: empty ({image.shape[0]}x{image.shape[1]} pixels); pass an image with pixels")
    image = np.ascontiguousarray(_to_uint8(image))  # a flipped view (img[..., ::-1]) becomes a plain array
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return over_white(image)
    return image


def to_bgr(image: ImageInput) -> np.ndarray:
    """Any accepted image (a path, a PIL image, an array; see the module docstring) as BGR uint8 (H, W, 3)."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if _is_pil(image):
        if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
            return as_bgr(np.asarray(image.convert("RGBA"))[..., [2, 1, 0, 3]])  # transparency laid over white
        return as_bgr(np.asarray(image.convert("RGB"))[..., ::-1])
    if isinstance(image, np.ndarray):
        return as_bgr(image)
    if type(image).__module__.split(".")[0] == "torch":
        raise ImageError("image: a torch tensor; pass an array, e.g. tensor.cpu().numpy() as (H, W, 3) BGR uint8")
    raise ImageError(f"image: expected a file path, a PIL image or a (H, W, 3) BGR uint8 array, got "
                     f"{type(image).__name__}")


def check_boxes(boxes: Any) -> np.ndarray:
    """Face boxes as (F, 4) or (F, 5) float64 (``x0, y0, x1, y1[, score]`` in pixels); one box may be given flat.

    >>> check_boxes([10, 20, 110, 120]).tolist()
    [[10.0, 20.0, 110.0, 120.0]]
    """
    try:
        arr = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        raise FaceInputError("boxes: expected numbers x0, y0, x1, y1 per face (an (F, 4) array)") from None
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] not in (4, 5):
        raise FaceInputError(f"boxes: expected (F, 4) or (F, 5) (x0, y0, x1, y1[, score]), got shape "
                             f"{np.shape(boxes)}")
    bad = ~np.isfinite(arr[:, :4]).all(1)
    if bad.any():
        raise FaceInputError(f"boxes: row {int(np.flatnonzero(bad)[0])} holds NaN or infinite coordinates "
                             f"{arr[bad][0, :4].tolist()}; give finite pixel coordinates")
    empty = (arr[:, 2] <= arr[:, 0]) | (arr[:, 3] <= arr[:, 1])
    if empty.any():
        raise FaceInputError(f"boxes: row {int(np.flatnonzero(empty)[0])} is empty {arr[empty][0, :4].tolist()}; "
                             f"give x0, y0, x1, y1 with x1 > x0 and y1 > y0")
    return arr


def check_landmarks(landmarks: Any) -> np.ndarray:
    """Landmarks as (F, K, 2) float64 (a single face may be (K, 2)); more than two coordinates are cut to x, y."""
    try:
        lm = np.asarray(landmarks, dtype=np.float64)
    except (TypeError, ValueError):
        raise FaceInputError("landmarks: expected numbers, an (F, K, 2) array of x, y pixels") from None
    lm = lm[None] if lm.ndim == 2 else lm
    if lm.ndim != 3 or lm.shape[2] < 2 or lm.shape[1] < 2:
        raise FaceInputError(f"landmarks: expected (F, K, 2) or (K, 2) x, y pixels with K >= 2, got shape "
                             f"{np.shape(landmarks)}")
    lm = lm[..., :2]
    bad = ~np.isfinite(lm).all((1, 2))
    if bad.any():
        raise FaceInputError(f"landmarks: face {int(np.flatnonzero(bad)[0])} holds NaN or infinite points; drop "
                             f"those points or that face")
    return lm
