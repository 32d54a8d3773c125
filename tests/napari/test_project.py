"""The project folder of GUI runs: what a run's config names for each layer, run states, remembered settings.

No Qt: layers are stand-ins with a napari layer's attributes (``name``, ``data``, ``metadata``, ``source``)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("napari")

from masktwins_bio.io import open_volume, write_ome_zarr  # noqa: E402
from masktwins_bio.napari._layers import META_KEY  # noqa: E402
from masktwins_bio.napari._project import (layer_spec, new_run_folder, project_runs, remember,  # noqa: E402
                                           remembered, run_state)

VS = (40.0, 8.0, 8.0)


def layer(name, data, path=None):
    return SimpleNamespace(name=name, data=data, multiscale=False, source=SimpleNamespace(path=None),
                           metadata={META_KEY: {"path": str(path)}} if path else {})


@pytest.fixture
def stored(tmp_path):
    data = np.random.default_rng(0).integers(0, 255, (4, 16, 16), dtype=np.uint8)
    return write_ome_zarr(tmp_path / "raw.zarr", data, VS), data


@pytest.mark.parametrize("case, names_the_file", [
    ("lazy view of the file", True),
    ("unchanged copy in memory", True),
    ("painted copy in memory", False),
    ("no file at all", False),
])
def test_a_layer_names_its_file_only_when_it_shows_the_files_data(tmp_path, stored, case, names_the_file):
    path, data = stored
    project = tmp_path / "project"
    if case == "lazy view of the file":
        lyr = layer("raw", open_volume(str(path)).array, path)
    elif case == "unchanged copy in memory":
        lyr = layer("raw", data.copy(), path)
    elif case == "painted copy in memory":
        painted = data.copy()
        painted[0, 0, 0] ^= 1
        lyr = layer("raw", painted, path)
    else:
        lyr = layer("raw", data.copy())
    spec = layer_spec(lyr, "image", VS, project)
    if names_the_file:
        assert spec == str(path.resolve()) and not (project / "data").exists()
    else:
        vol = open_volume(spec)
        assert spec.startswith(str((project / "data").resolve())) and vol.voxel_size == VS
        np.testing.assert_array_equal(vol[:], np.asarray(lyr.data))
        assert layer_spec(lyr, "image", VS, project) == spec  # content-addressed: written once
        assert len(list((project / "data").iterdir())) == 1


def test_run_states_and_listing(tmp_path):
    project = tmp_path / "p"
    first = new_run_folder(project, "masktwins")
    first.mkdir(parents=True)
    assert run_state(first) == "empty" and project_runs(project) == []
    (first / "config.yaml").write_text("train: {steps: 10}\n")
    (first / "last.pt").write_bytes(b"")
    assert run_state(first) == "resumable"  # a checkpoint and no summary: interrupted
    (first / "summary.json").write_text('{"steps": 4}')
    assert run_state(first) == "resumable"  # stopped at step 4 of 10
    (first / "summary.json").write_text('{"steps": 10}')
    assert run_state(first) == "finished"
    second = new_run_folder(project, "masktwins")
    assert second != first
    second.mkdir()
    (second / "config.yaml").write_text("train: {steps: 10}\n")
    (second / "last.pt").write_bytes(b"")
    assert project_runs(project, "resumable") == [second] and set(project_runs(project)) == {first, second}
    # a method.agreement=auto run: its checkpoints are in its candidates' folders until the choice is made
    third = new_run_folder(project, "masktwins")
    (third / "agreement-symmetric").mkdir(parents=True)
    (third / "config.yaml").write_text("train: {steps: 10}\n")
    assert run_state(third) == "empty"
    (third / "agreement-symmetric" / "last.pt").write_bytes(b"")
    assert run_state(third) == "resumable"
    (third / "summary.json").write_text('{"steps": 10}')
    assert run_state(third) == "finished"


def test_settings_are_remembered_and_a_damaged_file_is_no_error(remembered_settings):
    assert remembered("project") is None
    remember("project", "/data/projects/mito")
    assert remembered("project") == "/data/projects/mito"
    remembered_settings.write_text("{not json")
    assert remembered("project", "default") == "default"
    remember("project", "/x")
    assert remembered("project") == "/x"
