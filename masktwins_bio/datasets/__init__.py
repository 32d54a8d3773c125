"""Public EM datasets: the catalogue (:mod:`.catalog`) and the downloader (:mod:`.download`) behind
``masktwins-bio download``."""

from __future__ import annotations

from .catalog import DATASETS, Conversion, Dataset, RemoteFile, dataset_providing
from .download import download, fetch

__all__ = ["DATASETS", "Dataset", "RemoteFile", "Conversion", "dataset_providing", "download", "fetch"]
