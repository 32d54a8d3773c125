"""Dataset downloads, offline: a local HTTP server on 127.0.0.1 serves small fixture files (with Range support, as
real servers have), and the catalogue's real entries are checked for consistency with the shipped configs."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from masktwins_bio import cli
from masktwins_bio.datasets import DATASETS, Conversion, Dataset, RemoteFile, dataset_providing, download, fetch
from masktwins_bio.datasets.download import RECORD
from masktwins_bio.errors import InputError
from masktwins_bio.io import open_volume

REPO = Path(__file__).resolve().parents[1]


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    requests: list = []
    cut: dict[str, int] = {}  # path -> bytes sent before the connection drops (once)

    def do_GET(self):  # noqa: N802 - http.server API
        path = self.path.lstrip("/")
        self.requests.append((path, self.headers.get("Range")))
        if path not in self.files:
            self.send_error(404)
            return
        data = self.files[path]
        start = 0
        m = re.match(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if m:
            start = int(m.group(1))
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if path in self.cut:  # an interrupted transfer: part of the body, then the connection closes
            self.wfile.write(body[: self.cut.pop(path)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.files, _Handler.requests, _Handler.cut = {}, [], {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    httpd.shutdown()


def _tif_bytes(array) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, array)
    return buf.getvalue()


@pytest.fixture
def tiny_dataset(server, monkeypatch):
    """A 'tiny' dataset on the local server: an image stack (published checksum), a 0/255 mask (no checksum) and a
    zip of slices."""
    url, handler = server
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (4, 16, 16), dtype=np.uint8)
    mask = (rng.random((4, 16, 16)) > 0.7).astype(np.uint8) * 255
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        for i in range(3):
            z.writestr(f"wrapped/slices/{i:02d}.tif", _tif_bytes(image[i]))
    handler.files = {"tiny/image.tif": _tif_bytes(image), "tiny/mask.tif": _tif_bytes(mask),
                     "tiny/slices.zip": zbuf.getvalue()}
    sha = hashlib.sha256(handler.files["tiny/image.tif"]).hexdigest()
    ds = Dataset("tiny", "a tiny test set", (40.0, 8.0, 8.0), "test", "none", files=(
        RemoteFile(f"{url}/tiny/image.tif", "tiny/image.tif", sha),
        RemoteFile(f"{url}/tiny/mask.tif", "tiny/mask.tif"),
        RemoteFile(f"{url}/tiny/slices.zip", "tiny/slices.zip", unzip="tiny/slices")),
        conversions=(Conversion("tiny/image.tif", "tiny/image.zarr", (40.0, 8.0, 8.0), roi="1:4,:,:"),
                     Conversion("tiny/mask.tif", "tiny/mask.zarr", (40.0, 8.0, 8.0), labels=True, binarize=128),
                     Conversion("tiny/slices", "tiny/slices.zarr", (40.0, 8.0, 8.0))))
    monkeypatch.setitem(DATASETS, "tiny", ds)
    return ds, handler, image, mask


def test_download_fetches_verifies_and_converts(tmp_path, tiny_dataset):
    ds, handler, image, mask = tiny_dataset
    download("tiny", tmp_path, progress=False)
    img = open_volume(tmp_path / "tiny" / "image.zarr")
    assert img.voxel_size == (40.0, 8.0, 8.0) and np.array_equal(img[:], image[1:4])
    assert set(np.unique(open_volume(tmp_path / "tiny" / "mask.zarr")[:])) <= {0, 1}
    assert np.array_equal(open_volume(tmp_path / "tiny" / "mask.zarr")[:], (mask >= 128).astype(np.uint8))
    assert np.array_equal(open_volume(tmp_path / "tiny" / "slices.zarr")[:], image[:3])  # found inside the wrapper
    record = __import__("json").loads((tmp_path / RECORD).read_text())
    assert set(record) == {"tiny/mask.tif", "tiny/slices.zip"}  # recorded where nothing is published
    n = len(handler.requests)
    download("tiny", tmp_path, progress=False)  # all there: nothing fetched again
    assert len(handler.requests) == n
    assert not list(tmp_path.rglob("*.part"))


def test_an_interrupted_download_resumes_with_a_range_request(tmp_path, tiny_dataset):
    ds, handler, image, _ = tiny_dataset
    handler.cut["tiny/image.tif"] = 100
    with pytest.raises(Exception):
        fetch(ds.files[0].url, tmp_path / "image.tif", ds.files[0].sha256, progress=False)
    part = tmp_path / "image.tif.part"
    assert part.stat().st_size == 100 and not (tmp_path / "image.tif").exists()  # never looks finished
    fetch(ds.files[0].url, tmp_path / "image.tif", ds.files[0].sha256, progress=False)
    assert handler.requests[-1] == ("tiny/image.tif", "bytes=100-")
    assert (tmp_path / "image.tif").read_bytes() == handler.files["tiny/image.tif"] and not part.exists()


def test_a_checksum_mismatch_removes_the_file_and_says_so(tmp_path, tiny_dataset, monkeypatch):
    ds, handler, _, _ = tiny_dataset
    handler.files["tiny/image.tif"] = b"not the published file"
    with pytest.raises(InputError, match="checksum mismatch.*run the command again"):
        download("tiny", tmp_path, progress=False)
    assert not (tmp_path / "tiny" / "image.tif").exists() and not list(tmp_path.rglob("*.part"))


def test_a_file_changed_after_its_first_download_is_caught(tmp_path, tiny_dataset):
    ds, handler, _, _ = tiny_dataset
    download("tiny", tmp_path, convert=False, progress=False)
    (tmp_path / "tiny" / "mask.tif").write_bytes(b"damaged")
    with pytest.raises(InputError, match="checksum differs from the one recorded"):
        download("tiny", tmp_path, convert=False, progress=False)


def test_the_mirror_replaces_the_official_urls(tmp_path, tiny_dataset, server, monkeypatch):
    url, handler = server
    ds, *_ = tiny_dataset
    monkeypatch.setitem(DATASETS, "tiny", Dataset("tiny", ds.title, ds.voxel_size, ds.license, ds.cite,
                                                  files=tuple(RemoteFile("https://example.invalid/x", f.path,
                                                                         f.sha256, f.unzip) for f in ds.files)))
    assert cli.main(["download", "tiny", str(tmp_path), "--mirror", url, "--no-progress"]) == 0
    assert (tmp_path / "tiny" / "image.tif").exists()


def test_cli_errors_are_one_line(tmp_path, tiny_dataset, server, refusal):
    url, handler = server
    assert cli.main(["download", "tiny", str(tmp_path / "a" / "b"), "--no-progress"]) == 2
    refusal("parent folder", "does not exist")
    del handler.files["tiny/mask.tif"]
    assert cli.main(["download", "tiny", str(tmp_path), "--no-progress"]) == 2
    refusal("HTTP 404")


def test_the_catalogue_covers_the_shipped_configs():
    for name, ds in DATASETS.items():
        assert ds.name == name and all(f.url.startswith("https://") for f in ds.files)
        assert all(f.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", f.sha256) for f in ds.files)
    needed = set()
    for cfg in (REPO / "configs").glob("*.yaml"):
        data = yaml.safe_load(cfg.read_text())
        if "MASKTWINS_DATA_ROOT" not in str(data.get("data_root")):  # the demo's synthetic data
            continue
        for spec in (data["source"]["image"], data["source"].get("labels"), data["target"]["image"],
                     *(data["target"].get("eval") or {}).values()):
            if isinstance(spec, str):
                ds = dataset_providing(spec)
                assert ds is not None, f"{cfg.name}: {spec} is not provided by any dataset"
                needed.add(ds.name)
    assert {"lucchi", "vnc3", "fafb", "mitoem-h"} <= needed


def test_train_names_the_missing_datasets_and_the_command(tmp_path, capsys, monkeypatch, refusal):
    monkeypatch.setenv("MASKTWINS_DATA_ROOT", str(tmp_path))
    assert cli.main(["train", str(REPO / "configs" / "lucchi2mitoem.yaml")]) == 2
    refusal("missing data", f"masktwins-bio download lucchi {tmp_path}", f"masktwins-bio download mitoem-h {tmp_path}")
