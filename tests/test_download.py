"""The download stage against a real HTTP server on 127.0.0.1, and extraction of hostile archives."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from petseg.data.archives import ARCHIVES, DownloadError, extract, fetch, md5sum
from tests.conftest import REPO, TINY_STEMS, TINY_TEST, TINY_TRAINVAL


class ArchiveServer:
    """Serves {name: bytes} with HTTP Range support; can drop a connection halfway or corrupt bytes."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.requests, self.drop_first, self.corrupt = files, [], set(), False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range")))
                if name not in server.files:
                    self.send_error(404)
                    return
                body = server.files[name]
                if server.corrupt:
                    body = bytes(b ^ 0xFF for b in body[:64]) + body[64:]
                start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if name in server.drop_first:  # half the bytes, then the connection dies
                    server.drop_first.discard(name)
                    self.wfile.write(body[start:start + (len(body) - start) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tiny_archives):
    folder, _ = tiny_archives
    srv = ArchiveServer({name: (folder / name).read_bytes() for name in ARCHIVES})
    yield srv
    srv.close()


def full_source_params(tmp_path: Path, url: str, checksums: dict, retries: int = 3) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(source="full", url=url, retries=retries, timeout=5)
    params["data"]["archives"]["full"] = checksums
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def petseg_download(tmp_path: Path, params: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "petseg", "--params", str(params), "download",
                           "--out", "data/raw", "--archives", "data/archives"],
                          cwd=tmp_path, capture_output=True, text=True)


def test_dropped_connection_resumes_with_a_range_request(server, tiny_archives, tmp_path):
    name = "images.tar.gz"
    spec = tiny_archives[1][name]
    server.drop_first.add(name)
    fetch(server.url + name, tmp_path / name, spec["size"], spec["md5"], retries=3, timeout=5)
    assert md5sum(tmp_path / name) == spec["md5"]
    assert not (tmp_path / f"{name}.part").exists()
    first, second = server.requests
    assert first == (name, None)
    assert second[1] is not None and int(second[1].split("=")[1].rstrip("-")) > 0  # resumed, not restarted


def test_download_stage_end_to_end_then_nothing_is_fetched_again(server, tiny_archives, tmp_path):
    params = full_source_params(tmp_path, server.url, tiny_archives[1])
    result = petseg_download(tmp_path, params)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data/raw/images").is_dir() and (tmp_path / "data/raw/annotations/trimaps").is_dir()
    assert len(server.requests) == 2
    assert petseg_download(tmp_path, params).returncode == 0
    assert len(server.requests) == 2  # verified archives on disk are used as they are


def test_wrong_bytes_end_in_a_clear_error_and_no_extracted_data(server, tiny_archives, tmp_path):
    server.corrupt = True
    result = petseg_download(tmp_path, full_source_params(tmp_path, server.url, tiny_archives[1]))
    assert result.returncode == 1
    expected_md5 = tiny_archives[1]["images.tar.gz"]["md5"]
    assert "images.tar.gz: md5 " in result.stderr and f"expected {expected_md5}" in result.stderr
    *progress, error = result.stderr.strip().splitlines()  # progress lines share stderr; the error is one line
    assert error.startswith("petseg download: error: ") and all(p.startswith("downloading ") for p in progress)
    assert not (tmp_path / "data/raw").exists()
    assert not list((tmp_path / "data/archives").iterdir())  # the bad download was deleted


def test_no_network_says_so_and_names_the_alternatives(tiny_archives, tmp_path):
    params = full_source_params(tmp_path, "http://127.0.0.1:9/", tiny_archives[1], retries=1)
    result = petseg_download(tmp_path, params)
    assert result.returncode == 1
    *progress, line = result.stderr.strip().splitlines()
    assert all(p.startswith("downloading ") for p in progress) and "cannot download http://127.0.0.1:9/images.tar.gz" in line
    assert "data.source=sample" in line and "place the archives by hand in data/archives/" in line


def test_archives_placed_by_hand_are_used_offline(tiny_archives, tmp_path):
    (tmp_path / "data/archives").mkdir(parents=True)
    for name in ARCHIVES:
        (tmp_path / "data/archives" / name).write_bytes((tiny_archives[0] / name).read_bytes())
    result = petseg_download(tmp_path, full_source_params(tmp_path, "http://127.0.0.1:9/", tiny_archives[1]))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data/raw/annotations/test.txt").is_file()


def test_a_bad_archive_placed_by_hand_is_reported_and_kept(tiny_archives, tmp_path):
    (tmp_path / "data/archives").mkdir(parents=True)
    for name in ARCHIVES:
        (tmp_path / "data/archives" / name).write_bytes(b"not the archive")
    result = petseg_download(tmp_path, full_source_params(tmp_path, "http://127.0.0.1:9/", tiny_archives[1]))
    assert result.returncode == 1
    assert "data/archives/images.tar.gz: 15 bytes, expected" in result.stderr
    assert (tmp_path / "data/archives/images.tar.gz").read_bytes() == b"not the archive"


def hostile_archive(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("images/ok.jpg")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        tar.addfile(member, io.BytesIO(data) if data else None)
    return path


def members():
    absolute = tarfile.TarInfo("/tmp/petseg-evil-absolute")
    absolute.size = 4
    dotdot = tarfile.TarInfo("images/../../evil-dotdot")
    dotdot.size = 4
    link = tarfile.TarInfo("images/passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    relative_link = tarfile.TarInfo("images/up")
    relative_link.type, relative_link.linkname = tarfile.SYMTYPE, "../../.."
    device = tarfile.TarInfo("images/null")
    device.type, device.devmajor, device.devminor = tarfile.CHRTYPE, 1, 3
    return {"absolute": absolute, "dotdot": dotdot, "symlink": link, "relative-symlink": relative_link,
            "device": device}


@pytest.mark.parametrize("kind", list(members()))
def test_extraction_refuses_members_that_escape(tmp_path, kind):
    member = members()[kind]
    archive = hostile_archive(tmp_path / "images.tar.gz", member, b"evil" if member.isreg() else b"")
    before = set((tmp_path.parent).iterdir())
    with pytest.raises(DownloadError, match="unsafe member refused"):
        extract({"images.tar.gz": archive}, tmp_path / "work" / "raw")
    assert not (tmp_path / "work" / "raw").exists()
    assert not list((tmp_path / "work").iterdir())  # the temporary extraction is gone too
    assert set(tmp_path.parent.iterdir()) == before
    assert not Path("/tmp/petseg-evil-absolute").exists()


def folder_params(tmp_path: Path, folder: Path) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(source="folder", folder=str(folder))
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.fixture
def pets(tiny_raw, tmp_path) -> Path:
    """A local copy in the official layout, with a file outside it that is not copied."""
    folder = tmp_path / "pets"
    shutil.copytree(tiny_raw, folder)
    (folder / "README.md").write_text("a copy\n")
    return folder


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_local_folder_is_checked_and_copied_like_the_archives(pets, tiny_raw, tmp_path):
    result = petseg_download(tmp_path, folder_params(tmp_path, pets))
    assert result.returncode == 0, result.stderr
    assert tree(tmp_path / "data/raw") == tree(tiny_raw)  # what extracting the same pairs' archives gives
    counts = f"data/raw: images {len(TINY_STEMS)}, trimaps {len(TINY_STEMS)}, trainval {len(TINY_TRAINVAL)}, " \
             f"test {len(TINY_TEST)}, in no list 2"
    assert counts in result.stderr and "checked and copied" in result.stderr


@pytest.mark.parametrize("remove, missing", [
    ("annotations/trimaps", "missing annotations/trimaps"),
    ("annotations/list.txt", "missing annotations/list.txt"),
    ("images", "missing images"),
])
def test_a_folder_not_in_the_official_layout_names_what_is_missing(pets, tmp_path, remove, missing):
    (tmp_path / "data/raw").mkdir(parents=True)
    (tmp_path / "data/raw/kept").write_text("earlier data")
    path = pets / remove
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    result = petseg_download(tmp_path, folder_params(tmp_path, pets))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"petseg download: error: {pets}: not the official layout, {missing}"]
    assert (tmp_path / "data/raw/kept").read_text() == "earlier data"  # nothing replaced
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["raw"]  # no temporary copy left


def test_a_listed_stem_the_folder_does_not_hold_is_named(pets, tmp_path):
    (pets / "images" / f"{TINY_TEST[1]}.jpg").unlink()
    result = petseg_download(tmp_path, folder_params(tmp_path, pets))
    assert result.returncode == 1
    line, = result.stderr.strip().splitlines()
    assert f"{pets}: " in line and f"test.txt lists {TINY_TEST[1]} but there is no images/{TINY_TEST[1]}.jpg" in line
    assert not (tmp_path / "data/raw").exists()


def test_a_stem_in_both_trainval_and_test_is_refused_as_leakage(pets, tmp_path):
    with open(pets / "annotations" / "test.txt", "a") as f:
        f.write(f"{TINY_TRAINVAL[3]} 1 1 1\n")
    result = petseg_download(tmp_path, folder_params(tmp_path, pets))
    assert result.returncode == 1
    line, = result.stderr.strip().splitlines()
    assert "1 stems listed in both annotations/trainval.txt and annotations/test.txt" in line
    assert line.endswith(TINY_TRAINVAL[3])


def test_archives_with_leakage_are_refused_too(tiny_raw, tmp_path):
    leaky = tmp_path / "leaky"
    shutil.copytree(tiny_raw, leaky)
    with open(leaky / "annotations" / "trainval.txt", "a") as f:
        f.write(f"{TINY_TEST[0]} 1 1 1\n")
    archives = {}
    for name, top in (("images.tar.gz", "images"), ("annotations.tar.gz", "annotations")):
        with tarfile.open(tmp_path / name, "w:gz") as tar:
            tar.add(leaky / top, arcname=top)
        archives[name] = tmp_path / name
    with pytest.raises(DownloadError, match=f"stems listed in both .*: {TINY_TEST[0]}$"):
        extract(archives, tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_a_missing_folder_is_a_param_error(tmp_path):
    result = petseg_download(tmp_path, folder_params(tmp_path, tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "data.folder: " in result.stderr and "is no folder" in result.stderr
