# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where an image may be read from, and reading it whole.

vm_image runs as root on the compute host and publishes what it reads into ``_base`` and into
a guest's disk, so a source is a way to read the host. The rules:

- ``http://`` and ``https://`` (redirects only to http(s)); no other scheme.
- ``file://`` and absolute paths only under an *image root* the operator configured
  (``image_roots``; none by default, so no local source at all). The path is resolved with
  ``realpath`` (symbolic links and ``..``) and must lie in a root; it is then opened
  component by component from the root's directory with ``O_NOFOLLOW``, so that a link
  swapped in after the check cannot win, and it must be a regular file (``fstat`` of the
  open file: no device, FIFO, socket or directory). ``/proc``, ``/sys`` and ``/dev`` are
  never sources, even inside a root.
- Every download has a size cap; a file larger than it, or a server announcing more, is
  refused before anything is written.
- A download must be whole: fewer bytes than ``Content-Length`` (or than the local file's
  size) are refused, and so are more. A server that sends no length and ends the body by
  closing the connection cannot be told apart from a dropped connection: such a download is
  accepted only with a checksum, which then proves it whole. (Nova trusts Glance here,
  which checks the image's checksum and size on upload.)
- An image without a checksum is refused unless its catalog entry says ``allow_unverified``.
"""
from __future__ import annotations

import errno
import fcntl
import http.client
import os
import stat
import urllib.error
import urllib.parse
from dataclasses import dataclass
from typing import BinaryIO, Optional, Sequence, Tuple


from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.units import GIB

CHUNK = 1024 * 1024
# The largest download vm_image takes by default (its download_max_bytes option). Cloud
# images are hundreds of MiB, large Windows images some tens of GiB.
DEFAULT_MAX_DOWNLOAD_BYTES = 64 * GIB
# Pseudo-filesystems: their "files" are the host's state, never an image.
FORBIDDEN_TREES = ("/proc", "/sys", "/dev")
ROOTS_HINT = ("add the directory that holds it to image_roots (the role variable "
              "virtops_image_roots), or serve it over http(s)")


@dataclass(frozen=True)
class FetchPolicy:
    """What a download may read and how much of it."""
    roots: Tuple[str, ...] = ()
    max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES

    @classmethod
    def build(cls, roots: Optional[Sequence[str]] = None,
              max_bytes: Optional[int] = None) -> "FetchPolicy":
        cleaned = []
        for root in roots or ():
            root = str(root)
            if not os.path.isabs(root):
                raise VirtopsError("image_roots: %r is not an absolute path" % root)
            cleaned.append(root)
        if max_bytes is not None and max_bytes <= 0:
            raise VirtopsError("download_max_bytes must be a positive number of bytes, not %r"
                               % (max_bytes,))
        return cls(tuple(cleaned), max_bytes or DEFAULT_MAX_DOWNLOAD_BYTES)

    def capped(self, max_bytes: int) -> "FetchPolicy":
        return FetchPolicy(self.roots, min(self.max_bytes, max_bytes))


def local_path(url: str) -> Optional[str]:
    """The host path of a ``file://`` URL or an absolute path; None for http(s).
    Refuses every other scheme."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise VirtopsError("image source %s: a file:// URL names a file on the compute "
                               "host; %r is not this host" % (url, parsed.netloc), url=url)
        return urllib.parse.unquote(parsed.path)
    if parsed.scheme == "" and url.startswith("/"):
        return url
    raise VirtopsError("image source %r: the scheme %r is not supported; use http://, "
                       "https://, file:// or an absolute path under an image root"
                       % (url, parsed.scheme or ""), url=url, reason="unsupported scheme")


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def check_source_allowed(url: str, policy: FetchPolicy) -> Optional[Tuple[str, str]]:
    """Refuse a source the policy does not allow, before anything is fetched. For a local
    source, returns its resolved path and the image root that holds it; None for http(s)."""
    path = local_path(url)
    if path is None:
        return None
    if not policy.roots:
        raise VirtopsError("image source %s is a file on the host, and no image root is "
                           "configured: %s" % (url, ROOTS_HINT), url=url,
                           reason="outside the image roots")
    real = os.path.realpath(path)
    for tree in FORBIDDEN_TREES:
        if _within(real, tree):
            raise VirtopsError("image source %s resolves to %s, in %s, which holds the "
                               "host's devices and state, never an image" % (url, real, tree),
                               url=url, reason="forbidden path")
    for candidate in policy.roots:
        resolved = os.path.realpath(candidate)
        if _within(real, resolved):
            return real, resolved
    shown = "" if real == path else " (resolves to %s)" % real
    raise VirtopsError("image source %s%s is outside the image roots (%s): %s"
                       % (url, shown, ", ".join(policy.roots), ROOTS_HINT), url=url,
                       reason="outside the image roots")


def open_local(url: str, policy: FetchPolicy) -> Tuple[BinaryIO, int]:
    """The open regular file of a local source and its size, if the policy allows it."""
    real, root = check_source_allowed(url, policy)
    fd = _open_beneath(root, os.path.relpath(real, root), url)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise VirtopsError("image source %s is not a regular file (%s): only image files "
                               "are read" % (url, _kind(info.st_mode)), url=url,
                               reason="not a regular file")
        if info.st_size > policy.max_bytes:
            raise _too_large(url, policy.max_bytes, info.st_size)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise


def _open_beneath(root: str, relative: str, url: str) -> int:
    """Open ``root``/``relative`` one component at a time, never following a link: what the
    realpath check saw is what is read, even if a link is swapped in meanwhile."""
    parts = [] if relative == "." else relative.split("/")
    if not parts:
        raise VirtopsError("image source %s is an image root itself, a directory" % url,
                           url=url, reason="not a regular file")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            following = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                dir_fd=fd)
            os.close(fd)
            fd = following
        # A device is never opened (opening some has effects); one swapped in after this
        # look is refused by the caller's fstat. O_NONBLOCK: a FIFO must not wait for a writer.
        seen = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        if not stat.S_ISREG(seen.st_mode):
            raise VirtopsError("image source %s is not a regular file (%s): only image files "
                               "are read" % (url, _kind(seen.st_mode)), url=url,
                               reason="not a regular file")
        leaf = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
                       | os.O_CLOEXEC, dir_fd=fd)
    except OSError as exc:
        hint = ""
        if exc.errno == errno.ELOOP or exc.errno == errno.ENOTDIR:
            hint = " (a path component became a symbolic link while it was opened)"
        raise VirtopsError("cannot read image %s: %s%s" % (url, exc.strerror, hint), url=url,
                           reason="cannot open")
    finally:
        os.close(fd)
    return leaf


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "mode %o" % mode


def _too_large(url: str, limit: int, size: Optional[int] = None) -> VirtopsError:
    told = "" if size is None else " (%d bytes)" % size
    return VirtopsError("image %s is larger than %d bytes%s, the most a download may be: is it "
                        "the right file? Raise download_max_bytes (virtops_image_download_"
                        "max_bytes) if it is" % (url, limit, told), url=url, limit=limit,
                        reason="larger than the download limit")


class _Body:
    """An HTTP response body read to its announced end, and no further."""

    def __init__(self, response, url: str):
        self.response = response
        self.url = url
        self.chunked = bool(getattr(response, "chunked", False))
        header = response.headers.get("Content-Length") if not self.chunked else None
        self.length: Optional[int] = None
        if header is not None:
            try:
                self.length = int(header)
                if self.length < 0:
                    raise ValueError
            except ValueError:
                raise VirtopsError("the server of image %s sent an invalid Content-Length %r"
                                   % (url, header), url=url, reason="invalid Content-Length")
        self.remaining = self.length

    def read(self, size: int) -> bytes:
        if self.chunked or self.remaining is None:
            return self.response.read(size)
        # Read the socket itself, not response.read: http.client silently ends a body that
        # is shorter than Content-Length and never shows what follows it.
        if self.remaining <= 0 or self.response.fp is None:
            return b""
        data = self.response.fp.read(min(size, self.remaining))
        self.remaining -= len(data)
        return data

    def trailing(self) -> bool:
        """Whether the server sent more than Content-Length (checked when it closes the
        connection after the body, as servers answering urllib's ``Connection: close`` do)."""
        if self.chunked or self.length is None or self.response.fp is None \
                or not getattr(self.response, "will_close", False):
            return False
        return bool(self.response.fp.read(1))

    def close(self) -> None:
        self.response.close()


def open_source(url: str, timeout: float, policy: FetchPolicy):
    """A readable stream for ``url``, and the size it must have (None when unknown)."""
    if local_path(url) is not None:
        return open_local(url, policy)
    # Imported here: only a download needs it, and its imports (http, ssl, cryptography) cost
    # every build 30-45 ms on a small host, where a cached base is the common case.
    from ansible.module_utils.urls import open_url  # pylint: disable=import-outside-toplevel
    try:
        # decompress=False: the bytes and the length are the image's, never a gzip layer's.
        response = open_url(url, timeout=timeout, follow_redirects="safe", decompress=False)
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        raise VirtopsError("cannot download image %s: %s" % (url, getattr(exc, "reason", exc)),
                           url=url, reason="cannot download")
    final = response.geturl() if hasattr(response, "geturl") else url
    if urllib.parse.urlparse(final).scheme not in ("http", "https"):
        response.close()
        raise VirtopsError("image %s redirects to %s: only http(s) is followed" % (url, final),
                           url=url, reason="unsupported scheme")
    body = _Body(response, url)
    if body.length is not None and body.length > policy.max_bytes:
        body.close()
        raise _too_large(url, policy.max_bytes, body.length)
    return body, body.length


def copy_whole(url: str, out: BinaryIO, timeout: float, policy: FetchPolicy,
               checksum: Optional[str], dest: str) -> int:
    """Copy the source into ``out``; refuse anything larger than the policy allows, shorter
    or longer than announced. Returns the bytes written."""
    written = 0
    source, expected = open_source(url, timeout, policy)
    try:
        if expected is None and not checksum:
            chunked = isinstance(source, _Body) and source.chunked
            if not chunked:
                raise VirtopsError(
                    "the server of image %s sends no Content-Length, so a dropped connection "
                    "could not be told from the end of the image: declare its checksum"
                    % url, url=url, reason="no length and no checksum")
        while True:
            try:
                chunk = source.read(CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                raise VirtopsError("reading image %s failed after %d bytes: %s"
                                   % (url, written, exc), url=url, reason="truncated")
            if not chunk:
                break
            if written + len(chunk) > policy.max_bytes:
                raise _too_large(url, policy.max_bytes)
            if expected is not None and written + len(chunk) > expected:
                raise _longer_than_announced(url, expected)
            try:
                out.write(chunk)
            except OSError as exc:
                raise VirtopsError("writing %s failed after %d bytes: %s (is the disk full?)"
                                   % (dest, written, exc.strerror))
            written += len(chunk)
        if expected is not None and written < expected:
            raise VirtopsError("image %s is truncated: %d of the %d bytes announced arrived "
                               "(the connection was closed or the file shrank)"
                               % (url, written, expected), url=url, reason="truncated",
                               expected_bytes=expected, received_bytes=written)
        if isinstance(source, _Body):
            try:
                extra = source.trailing()
            except (OSError, http.client.HTTPException):
                extra = False
            if extra:
                raise _longer_than_announced(url, expected)
    finally:
        source.close()
    return written


def _longer_than_announced(url: str, expected: Optional[int]) -> VirtopsError:
    return VirtopsError("image %s: more than the %s bytes announced arrived (the server's "
                        "Content-Length, or the file's size when it was opened); the download "
                        "is refused" % (url, expected), url=url, reason="length mismatch")
