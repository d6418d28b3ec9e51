"""`anomamind data fetch` against a local HTTP server on 127.0.0.1 (Range support, failures)."""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from anomamind.cli import main
from anomamind.envs.fetch import FetchError, download, fetch, unpack
from anomamind.envs.loaders import load_directory
from anomamind.envs.synthetic import generate_dataset, write_tsbad_csv
from anomamind.types import DataError


def make_zip(tmp_path: Path) -> bytes:
    """A small TSB-AD-U-like archive: two series under TSB-AD-U/ plus a file list."""
    staging = tmp_path / "staging"
    for series in generate_dataset(2, seed=1, length=2000):
        write_tsbad_csv(series, staging)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as bundle:
        for path in sorted(staging.glob("*.csv")):
            bundle.write(path, f"TSB-AD-U/{path.name}")
        bundle.writestr("File_List/TSB-AD-U-Eva.csv", "file_name\n" + "\n".join(p.name for p in staging.glob("*.csv")))
        # Incompressible filler so the archive spans several download chunks.
        bundle.writestr("TSB-AD-U/filler.bin", np.random.default_rng(0).bytes(600_000))
    return buffer.getvalue()


class ArchiveServer:
    """Serves one payload; can honour Range, cut the first response short, or ignore Range."""

    def __init__(self, payload: bytes, *, cut_after: int | None = None, ranges: bool = True):
        self.payload, self.cut_after, self.ranges = payload, cut_after, ranges
        self.requests: list[dict] = []
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                server_self.requests.append({"path": self.path, "range": self.headers.get("Range")})
                if self.path != "/TSB-AD-U.zip":
                    self.send_error(404, "Not Found")
                    return
                data, start = server_self.payload, 0
                header = self.headers.get("Range")
                if header and server_self.ranges:
                    start = int(header.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server_self.cut_after is not None:
                    cut, server_self.cut_after = server_self.cut_after, None
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/TSB-AD-U.zip"

    def __enter__(self) -> "ArchiveServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def payload(tmp_path_factory) -> bytes:
    return make_zip(tmp_path_factory.mktemp("zip"))


def test_fetch_downloads_verifies_and_unpacks(tmp_path, payload):
    digest = hashlib.sha256(payload).hexdigest()
    with ArchiveServer(payload) as server:
        dest = fetch("tsb-ad-u", tmp_path / "data", url=server.url, sha256=digest, log=lambda _: None)
    assert (dest / "TSB-AD-U.zip").read_bytes() == payload
    result = load_directory(dest / "TSB-AD-U")
    assert len(result.series) == 2 and result.failures == []
    assert (dest / "File_List" / "TSB-AD-U-Eva.csv").is_file()
    # A second run reuses the verified archive without a request.
    with ArchiveServer(payload) as server:
        fetch("tsb-ad-u", tmp_path / "data", url=server.url, sha256=digest, log=lambda _: None)
        assert server.requests == []


def test_interrupted_download_resumes_with_range(tmp_path, payload):
    target = tmp_path / "TSB-AD-U.zip"
    cut = len(payload) // 2
    with ArchiveServer(payload, cut_after=cut) as server:
        with pytest.raises(FetchError) as info:
            download(server.url, target, log=lambda _: None)
        assert "run the same command again to resume" in str(info.value)
        part = target.with_name("TSB-AD-U.zip.part")
        kept = part.stat().st_size
        assert 0 < kept <= cut and not target.exists()
        assert part.read_bytes() == payload[:kept]
    with pytest.raises(FetchError, match="is kept for the next run"):  # server gone: the part survives
        download(server.url, target, log=lambda _: None)
    assert part.stat().st_size == kept
    with ArchiveServer(payload) as server:
        download(server.url, target, sha256=hashlib.sha256(payload).hexdigest(), log=lambda _: None)
        assert server.requests[-1]["range"] == f"bytes={kept}-"
    assert target.read_bytes() == payload and not part.exists()


def test_server_without_range_support_restarts_cleanly(tmp_path, payload):
    target = tmp_path / "a.zip"
    target.with_name("a.zip.part").write_bytes(b"stale bytes")
    with ArchiveServer(payload, ranges=False) as server:
        download(server.url, target, log=lambda _: None)
    assert target.read_bytes() == payload


def test_complete_part_answered_416_is_accepted(tmp_path, payload):
    target = tmp_path / "a.zip"
    target.with_name("a.zip.part").write_bytes(payload)
    with ArchiveServer(payload) as server:
        download(server.url, target, log=lambda _: None)
    assert target.read_bytes() == payload


def test_checksum_mismatch_deletes_the_download(tmp_path, payload):
    target = tmp_path / "a.zip"
    with ArchiveServer(payload) as server:
        with pytest.raises(FetchError, match="SHA-256 mismatch"):
            download(server.url, target, sha256="0" * 64, log=lambda _: None)
    assert not target.exists() and not target.with_name("a.zip.part").exists()


def test_http_error_is_reported(tmp_path, payload):
    with ArchiveServer(payload) as server:
        with pytest.raises(FetchError, match="HTTP 404"):
            download(server.url.replace("TSB-AD-U.zip", "missing.zip"), tmp_path / "a.zip", log=lambda _: None)


def test_offline_gives_a_clear_message(tmp_path, capsys):
    with socket.socket() as probe:  # a port nobody listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/TSB-AD-U.zip"
    code = main(["data", "fetch", "tsb-ad-u", "--out", str(tmp_path), "--url", url, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "cannot connect" in err and "offline" in err and url in err


def test_cli_fetch_and_local_archive(tmp_path, payload):
    with ArchiveServer(payload) as server:
        code = main(["data", "fetch", "tsb-ad-u", "--out", str(tmp_path / "web"), "--url", server.url, "--no-progress"])
    assert code == 0 and len(list((tmp_path / "web" / "TSB-AD-U").glob("*.csv"))) == 2
    archive = tmp_path / "local.zip"
    archive.write_bytes(payload)
    assert main(["data", "fetch", "tsb-ad-u", "--out", str(tmp_path / "offline"), "--archive", str(archive)]) == 0
    assert len(load_directory(tmp_path / "offline").series) == 2


def test_unknown_source_and_bad_archives(tmp_path):
    with pytest.raises(DataError, match="unknown data source"):
        fetch("nope", tmp_path)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK not really a zip")
    with pytest.raises(FetchError, match="not a valid zip"):
        unpack(broken, tmp_path / "out")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as bundle:
        bundle.writestr("../escape.csv", "Data,Label\n1,0\n")
    with pytest.raises(FetchError, match="outside"):
        unpack(evil, tmp_path / "out")
    assert not (tmp_path / "escape.csv").exists()


def test_sources_come_from_the_config(tmp_path, payload):
    config = tmp_path / "data.yaml"
    with ArchiveServer(payload) as server:
        config.write_text(f"sources:\n  mini:\n    url: {server.url}\n    sha256: {hashlib.sha256(payload).hexdigest()}\n")
        dest = fetch("mini", tmp_path / "d", config=config, log=lambda _: None)
    assert len(load_directory(dest / "TSB-AD-U").series) == 2
