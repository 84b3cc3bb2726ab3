"""Images in prompts: a rendered image reference becomes a URL the APIs take, and stored
request bodies carry each image once.

A reference is an ``http(s)://`` URL (sent as is), a ``data:`` URL (as is) or a file path
relative to the project, read once and sent as a base64 data URL. The data URLs of files
are kept as run artifacts (``image:PATH``); `pack` replaces an image's base64 payload in a
stored text with a marker naming the artifact's sha256, and `unpack` puts it back, so
1,000 trials on one image store it once and reproduce still sees byte-identical requests.
"""

from __future__ import annotations

import base64
import mimetypes
import re
from collections.abc import Mapping
from pathlib import Path

from promptlab.canonical import sha256_hex
from promptlab.errors import UserError

__all__ = ["ImageLoader", "MARKER", "pack", "unpack"]

MARKER = re.compile(r"@promptlab-image:([0-9a-f]{64})@")
MIN_PACKED = 256  # payloads shorter than this are left inline


class ImageLoader:
    """Resolves image references to URLs; remembers the data URLs of files by path."""

    def __init__(self, root: Path | None, stored: dict[str, str] | None = None) -> None:
        self.root = root
        self.files: dict[str, str] = dict(stored or {})  # path -> data URL

    def url(self, ref: str, where: str) -> str:
        if ref.startswith(("http://", "https://", "data:")):
            return ref
        hit = self.files.get(ref)
        if hit is not None:
            return hit
        if self.root is None:
            raise UserError(f"{where}: image '{ref}' is not among the run's stored images")
        path = self.root / ref
        try:
            data = path.read_bytes()
        except OSError as exc:
            reason = "not found" if isinstance(exc, FileNotFoundError) else exc.strerror
            raise UserError(f"{where}: image '{ref}' {reason} ({path}); give a file path "
                            "relative to the project, a URL or a data URL") from None
        mime = mimetypes.guess_type(ref)[0] or "application/octet-stream"
        url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        self.files[ref] = url
        return url

    def payloads(self) -> dict[str, str]:
        """Base64 payload -> sha256 of its data URL (the artifact's key), for `pack`."""
        return {u.partition(",")[2]: sha256_hex(u) for u in self.files.values()
                if len(u) >= MIN_PACKED}


def pack(text: str, payloads: Mapping[str, str]) -> str:
    """`text` with every known image payload replaced by its marker."""
    for payload, sha in payloads.items():
        if payload in text:
            text = text.replace(payload, f"@promptlab-image:{sha}@")
    return text


def unpack(text: str, images: Mapping[str, str]) -> str:
    """`text` with markers replaced by the payloads of `images` (sha256 -> data URL);
    a marker with no image stays as it is."""
    if "@promptlab-image:" not in text:
        return text

    def payload(m: re.Match[str]) -> str:
        url = images.get(m.group(1))
        return url.partition(",")[2] if url is not None else m.group(0)
    return MARKER.sub(payload, text)
