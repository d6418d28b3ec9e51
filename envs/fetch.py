"""Download, verify and unpack public data archives (TSB-AD-U, Loghub), resuming partial downloads.

The archive is streamed to ``<name>.part`` next to its final path; when a run is cut off
the part stays, and the next run asks the server for the rest with an HTTP ``Range``
header. A SHA-256 and/or an MD5 (what Zenodo publishes) from the config is checked before
the archive is accepted. Zip and tar (.tar.gz, .tgz, .tar) archives are unpacked. Network
failures become a ``FetchError`` that says what happened and what to do, never a raw
requests traceback.
"""

from __future__ import annotations

import hashlib
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import requests

from anomamind.config import read_yaml
from anomamind.paths import CONFIG_DIR
from anomamind.types import DataError

DATA_CONFIG = CONFIG_DIR / "data.yaml"
_CHUNK = 1 << 16  # small, so an interrupted download loses at most 64 KiB of what arrived


class FetchError(DataError):
    """A download or unpacking that failed; the message says why and how to go on."""


@dataclass
class FetchSource:
    """One downloadable archive, as configured in ``configs/data.yaml`` under ``sources``."""

    name: str
    url: str
    archive: str
    sha256: str | None = None
    md5: str | None = None
    description: str = ""


def load_sources(path: str | Path = DATA_CONFIG) -> dict[str, FetchSource]:
    """The archives listed under ``sources`` in the data config, by name."""
    data = read_yaml(path)
    sources = data.get("sources")
    if not isinstance(sources, dict) or not sources:
        raise DataError(f"{path}: no 'sources' section with downloadable archives")
    out = {}
    for name, entry in sources.items():
        if not isinstance(entry, dict) or "url" not in entry:
            raise DataError(f"{path}: source {name!r} needs at least a 'url'")
        unknown = sorted(set(entry) - {"url", "archive", "sha256", "md5", "description"})
        if unknown:
            raise DataError(f"{path}: source {name!r} has unknown key(s) {unknown}")
        out[name] = FetchSource(
            name=name,
            url=str(entry["url"]),
            archive=str(entry.get("archive") or Path(str(entry["url"])).name),
            sha256=(str(entry["sha256"]).lower() if entry.get("sha256") else None),
            md5=(str(entry["md5"]).lower() if entry.get("md5") else None),
            description=str(entry.get("description", "")),
        )
    return out


def download(
    url: str,
    target: str | Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    timeout: float = 30.0,
    progress: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Fetch ``url`` into ``target``, resuming ``target.part`` if a previous run left one.

    An existing ``target`` whose checksums match (or with no checksum configured) is
    reused without touching the network.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file():
        if _checksum_problem(target, sha256, md5) is None:
            log(f"{target}: already downloaded")
            return target
        log(f"{target}: checksum differs from the configured one; downloading again")
        target.unlink()
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        response = requests.get(url, headers=headers, stream=True, timeout=timeout)
    except requests.exceptions.ConnectionError as err:
        kept = f" The partial download {part} ({have} bytes) is kept for the next run." if have else ""
        raise FetchError(
            f"cannot connect to {url} (offline, or the host is down): {_reason(err)}.{kept} "
            "On a machine without internet, download the archive elsewhere and unpack it with "
            "'anomamind data fetch ... --archive FILE'"
        ) from err
    except requests.exceptions.RequestException as err:
        raise FetchError(f"request to {url} failed: {_reason(err)}") from err

    with response:
        if response.status_code == 416 and have:
            total = _total_from_content_range(response.headers.get("Content-Range", ""))
            if total != have:  # the part is not the whole file: start again
                part.unlink()
                return download(url, target, sha256=sha256, md5=md5, timeout=timeout, progress=progress, log=log)
        elif response.status_code in (200, 206):
            resumed = response.status_code == 206 and have > 0
            if have and not resumed:
                log(f"{url}: the server does not resume downloads; starting again")
                have = 0
            elif resumed:
                log(f"{part}: resuming after {have} bytes")
            expected = have + int(response.headers.get("Content-Length", 0) or 0)
            _stream(response, part, append=resumed, progress=progress, done=have, expected=expected, url=url)
            size = part.stat().st_size
            if response.headers.get("Content-Length") and size != expected:
                raise FetchError(
                    f"download of {url} stopped at {size} of {expected} bytes; "
                    f"run the same command again to resume from {part}"
                )
        else:
            raise FetchError(f"{url}: the server answered HTTP {response.status_code} {response.reason}")

    problem = _checksum_problem(part, sha256, md5)
    if problem is not None:
        part.unlink()
        raise FetchError(
            f"{url}: {problem}; the corrupt download was deleted, run the command again "
            "(or fix the checksum in the config)"
        )
    part.replace(target)
    return target


def unpack(archive: str | Path, dest: str | Path) -> list[Path]:
    """Extract a zip or tar archive into ``dest``; refuse members that would land outside it."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if archive.name.lower().endswith((".tar.gz", ".tgz", ".tar")):
        return _untar(archive, dest)
    try:
        with zipfile.ZipFile(archive) as bundle:
            root = dest.resolve()
            for member in bundle.namelist():
                if not (root / member).resolve().is_relative_to(root):
                    raise FetchError(f"{archive}: member {member!r} would be written outside {dest}; refusing")
            bundle.extractall(dest)
            names = [n for n in bundle.namelist() if not n.endswith("/")]
    except zipfile.BadZipFile as err:
        raise FetchError(f"{archive}: not a valid zip archive ({err}); delete it and download again") from err
    return [dest / n for n in names]


def _untar(archive: Path, dest: Path) -> list[Path]:
    """Extract a tar archive with tarfile's "data" filter (no links out, no devices, no
    absolute or escaping paths); a member that would land outside ``dest`` is refused."""
    try:
        with tarfile.open(archive) as bundle:
            members = bundle.getmembers()
            root = dest.resolve()
            for member in members:
                if not (root / member.name).resolve().is_relative_to(root):
                    raise FetchError(f"{archive}: member {member.name!r} would be written outside {dest}; refusing")
            bundle.extractall(dest, filter="data")
    except (tarfile.TarError, EOFError, OSError) as err:
        if isinstance(err, FetchError):
            raise
        raise FetchError(f"{archive}: not a valid tar archive ({err}); delete it and download again") from err
    return [dest / m.name for m in members if m.isfile()]


def fetch(
    name: str,
    dest: str | Path,
    *,
    url: str | None = None,
    sha256: str | None = None,
    md5: str | None = None,
    archive: str | Path | None = None,
    config: str | Path = DATA_CONFIG,
    keep_archive: bool = True,
    progress: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Download (or take a local ``archive``), verify and unpack source ``name`` into ``dest``.

    ``url``, ``sha256`` and ``md5`` override the config. Returns ``dest``.
    """
    sources = load_sources(config)
    if name not in sources:
        raise DataError(f"unknown data source {name!r}; known: {sorted(sources)} (see {config})")
    source = sources[name]
    dest = Path(dest)
    checksum = (sha256 or source.sha256 or "").lower() or None
    md5_sum = (md5 or source.md5 or "").lower() or None
    if archive is not None:
        archive_path = Path(archive)
        if not archive_path.is_file():
            raise FetchError(f"{archive_path}: archive not found")
        problem = _checksum_problem(archive_path, checksum, md5_sum)
        if problem is not None:
            raise FetchError(f"{archive_path}: {problem}")
    else:
        archive_path = download(
            url or source.url, dest / source.archive, sha256=checksum, md5=md5_sum, progress=progress, log=log
        )
    files = unpack(archive_path, dest)
    log(f"unpacked {len(files)} files from {archive_path.name} into {dest}")
    if not keep_archive and archive is None:
        archive_path.unlink()
    return dest


# --- internals -------------------------------------------------------------------------


def _stream(response, part: Path, *, append: bool, progress: bool, done: int, expected: int, url: str) -> None:
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=expected or None, initial=done, unit="B", unit_scale=True, desc=part.name)
    try:
        with open(part, "ab" if append else "wb") as out:
            for chunk in response.iter_content(chunk_size=_CHUNK):
                out.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
    except (requests.exceptions.RequestException, OSError) as err:
        size = part.stat().st_size if part.exists() else 0
        raise FetchError(
            f"download of {url} was interrupted after {size} bytes ({_reason(err)}); "
            f"run the same command again to resume from {part}"
        ) from err
    finally:
        if bar is not None:
            bar.close()


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checksum_problem(path: Path, sha256: str | None, md5: str | None) -> str | None:
    """What is wrong with ``path``'s checksums (None when every configured one matches)."""
    for name, algorithm, expected in (("SHA-256", "sha256", sha256), ("MD5", "md5", md5)):
        if expected:
            actual = _digest(path, algorithm)
            if actual != expected.lower():
                return f"{name} mismatch (expected {expected.lower()}, got {actual})"
    return None


def _total_from_content_range(header: str) -> int | None:
    """``bytes */1234`` or ``bytes 0-99/1234`` -> 1234."""
    total = header.rsplit("/", 1)[-1].strip()
    return int(total) if total.isdigit() else None


def _reason(err: Exception) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:300]
