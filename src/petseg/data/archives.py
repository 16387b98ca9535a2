"""The archives: get the two (or the shipped sample), verify size and md5, extract or copy to the official layout."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path

from tqdm import tqdm

from petseg.core.errors import PetsegError
from petseg.core.limits import MAX_ARCHIVE_BYTES, MAX_ARCHIVE_MEMBERS
from petseg.data.splits import check_no_leak, read_split_list

ARCHIVES = ("images.tar.gz", "annotations.tar.gz")
CHUNK = 1 << 20


class DownloadError(PetsegError, OSError):
    """A missing, unreachable or corrupt archive; the message is one line for the user."""


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, size: int, md5: str, name: str | None = None) -> None:
    """Raise DownloadError unless `path` has the expected size and md5."""
    name = name or str(path)
    actual_size = path.stat().st_size
    if actual_size != size:
        raise DownloadError(f"{name}: {actual_size} bytes, expected {size}")
    actual_md5 = md5sum(path)
    if actual_md5 != md5:
        raise DownloadError(f"{name}: md5 {actual_md5}, expected {md5}")


def _transfer(url: str, part: Path, size: int, timeout: float) -> None:
    """Append the rest of `url` to `part`, asking the server for the missing range only."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if have and response.status != 206:  # the server ignored the range: start over
            have = 0
        bar = tqdm(total=size, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=part.name.removesuffix(".part"), disable=not sys.stderr.isatty())
        with bar, open(part, "ab" if have else "wb") as out:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                bar.update(len(chunk))


def fetch(url: str, dest: Path, size: int, md5: str, retries: int, timeout: float) -> None:
    """Download `url` to `dest`: resumable (HTTP Range), retried with backoff, verified, then renamed.

    The bytes go to `dest.part`; `dest` appears only once its size and md5 are right.
    """
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, retries + 1):
        try:
            _transfer(url, part, size, timeout)
            if part.stat().st_size >= size:
                break
            raise DownloadError(f"connection closed at {part.stat().st_size} of {size} bytes")
        except (urllib.error.URLError, HTTPException, OSError, DownloadError) as err:
            reason = getattr(err, "reason", err)
            if attempt == retries:
                raise DownloadError(
                    f"cannot download {url} ({reason}) after {retries} tries: use data.source=sample for the "
                    f"embedded sample, or place the archives by hand in {dest.parent}/") from None
            delay = min(60, 2 ** (attempt - 1))
            print(f"{dest.name}: {reason}; retrying in {delay} s ({attempt}/{retries})", file=sys.stderr, flush=True)
            time.sleep(delay)
    try:
        verify(part, size, md5, name=dest.name)
    except DownloadError as err:
        part.unlink()
        raise DownloadError(f"{err}; deleted the download, run again to fetch it anew") from None
    part.rename(dest)


def ensure_archives(folder: Path, checksums: dict, url: str | None = None, retries: int = 5,
                    timeout: float = 30.0) -> dict[str, Path]:
    """Verified archive paths in `folder`; with a `url`, missing ones are downloaded first."""
    paths = {}
    for name in ARCHIVES:
        path, spec = Path(folder) / name, checksums[name]
        if not path.exists():
            if url is None:
                raise DownloadError(f"{path}: missing")
            print(f"downloading {url.rstrip('/')}/{name} ({spec['size'] / 1e6:.0f} MB) to {path}", file=sys.stderr, flush=True)
            fetch(f"{url.rstrip('/')}/{name}", path, spec["size"], spec["md5"], retries, timeout)
        verify(path, spec["size"], spec["md5"])  # a file placed by hand is checked, never deleted
        paths[name] = path
    return paths


def check_member(member: tarfile.TarInfo) -> None:
    """Refuse a member that could write outside the target: absolute, '..', outward link, device."""
    name = member.name
    if name.startswith("/") or ".." in Path(name).parts:
        raise tarfile.FilterError(f"{name!r}: absolute path or '..'")
    if member.isdev() or member.isfifo():
        raise tarfile.FilterError(f"{name!r}: device or fifo")
    if member.issym() or member.islnk():
        target = member.linkname if member.islnk() else str(Path(name).parent / member.linkname)
        if member.linkname.startswith("/") or ".." in Path(target).parts:
            raise tarfile.FilterError(f"{name!r}: link to {member.linkname!r} outside the archive")


LAYOUT = ("images", "annotations/trimaps", "annotations/list.txt", "annotations/trainval.txt",
          "annotations/test.txt")
LISTS = ("list.txt", "trainval.txt", "test.txt")


def check_layout(root: Path, name: str) -> dict[str, int]:
    """Check a folder in the official layout; returns its counts. `name` is what the errors call it.

    Refused, in one line naming what is missing: a missing folder or list file, a listed stem without
    its photo or trimap, and a stem listed in both trainval.txt and test.txt (test photos in training).
    """
    root = Path(root)
    missing = [required for required in LAYOUT if not (root / required).exists()]
    if missing:
        raise DownloadError(f"{name}: not the official layout, missing {', '.join(missing)}")
    images = {p.stem for p in (root / "images").glob("*.jpg") if not p.name.startswith("._")}
    trimaps = {p.stem for p in (root / "annotations" / "trimaps").glob("*.png") if not p.name.startswith("._")}
    lists = {list_name: read_split_list(root / "annotations" / list_name) for list_name in LISTS}
    absent = []
    for list_name, stems in lists.items():
        for stem in dict.fromkeys(stems):
            absent += [f"{list_name} lists {stem} but there is no {kind}/{stem}.{ext}"
                       for kind, ext, held in (("images", "jpg", images), ("annotations/trimaps", "png", trimaps))
                       if stem not in held]
    if absent:
        more = f" (and {len(absent) - 3} more)" if len(absent) > 3 else ""
        raise DownloadError(f"{name}: {len(absent)} listed files missing: {'; '.join(absent[:3])}{more}")
    try:
        check_no_leak(lists["trainval.txt"], lists["test.txt"], name)
    except PetsegError as err:
        raise DownloadError(str(err)) from None
    trainval, test = set(lists["trainval.txt"]), set(lists["test.txt"])
    return {"images": len(images), "trimaps": len(trimaps), "trainval": len(trainval), "test": len(test),
            "in no list": len(images - trainval - test)}


def _replace(out_dir: Path, fill, name: str) -> dict[str, int]:
    """Build `out_dir` in a temporary folder beside it with `fill(tmp)`, check it, then rename it into place.

    Nothing is left behind on an error, and an existing `out_dir` is replaced only once the new one is whole.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        fill(tmp)
        counts = check_layout(tmp, name)
        shutil.rmtree(out_dir, ignore_errors=True)
        tmp.rename(out_dir)
        return counts
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def extract(archives: dict[str, Path], out_dir: Path) -> dict[str, int]:
    """Extract all archives into `out_dir` atomically; members escaping the target are refused."""
    def fill(tmp: Path) -> None:
        for path in archives.values():
            try:
                with tarfile.open(path, "r:gz") as tar:
                    count = total = 0
                    for member in tar:  # read one by one: a tar bomb is refused at the limit, before extracting
                        check_member(member)
                        count, total = count + 1, total + member.size
                        if count > MAX_ARCHIVE_MEMBERS or total > MAX_ARCHIVE_BYTES:
                            raise tarfile.FilterError(f"over {MAX_ARCHIVE_MEMBERS} members or {MAX_ARCHIVE_BYTES} "
                                                      "bytes once extracted")
                    tar.extractall(tmp, filter="data")  # Python's own checks too, as a second line
            except tarfile.FilterError as err:
                raise DownloadError(f"{path}: unsafe member refused, nothing extracted ({err})") from None
            except (tarfile.TarError, EOFError, OSError) as err:
                raise DownloadError(f"{path}: not a readable .tar.gz ({err})") from None

    return _replace(out_dir, fill, ", ".join(map(str, archives.values())))


def layout_files(folder: Path) -> list[Path]:
    """The files of a folder in the official layout that petseg reads: images/*.jpg, annotations/trimaps/*.png
    and the three list files; regular files only (a fifo would block, a folder is not a photo).

    A link (to a file or a folder on the way) is followed only where it stays inside `folder`: one to a file
    elsewhere (a key, another project's data) is refused in one line naming it, so that nothing from outside
    the folder ends up in data/raw, which DVC tracks and `dvc push` uploads.
    """
    root = os.path.realpath(folder)
    candidates = [*sorted((folder / "images").glob("*.jpg")), *sorted((folder / "annotations/trimaps").glob("*.png")),
                  *[folder / "annotations" / name for name in LISTS]]
    files = []
    for path in candidates:
        if path.name.startswith("._"):  # macOS metadata beside a photo
            continue
        real = os.path.realpath(path)
        if os.path.commonpath([root, real]) != root:
            raise DownloadError(f"{folder}: {path.relative_to(folder)} links to {real}, outside the folder; copy "
                                "the file into the folder instead (nothing was copied)")
        if os.path.isfile(real) and stat.S_ISREG(os.stat(real).st_mode):
            files.append(path)
    return files


def copy_folder(folder: Path, out_dir: Path) -> dict[str, int]:
    """Copy a local folder in the official layout (the files `layout_files` names) into `out_dir` atomically.

    The copy is checked like extracted archives, and errors name the folder; a bad one leaves `out_dir` as it was.
    Other files (the official xmls/, a README, anything else) are not copied.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DownloadError(f"{folder}: no such folder (data.folder)")

    def fill(tmp: Path) -> None:
        for path in layout_files(folder):
            target = tmp / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)

    return _replace(out_dir, fill, str(folder))
