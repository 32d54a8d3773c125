"""napari plugin of masktwins-bio (npe2 manifest ``napari.yaml``): reader, writers, sample data and three widgets.

Install with ``pip install "masktwins-bio[napari]"``; the plugin is found through the ``napari.manifest`` entry point
and is listed by ``npe2 list``. Everything here is a thin layer over the library API that the CLI uses: the widgets read
their fields and call :func:`masktwins_bio.inference.predict`, :func:`masktwins_bio.postprocess.segment`,
:func:`masktwins_bio.training.train` and :func:`masktwins_bio.metrics.evaluate` in background workers.

Contributions:

* **Reader** (:mod:`._reader`): OME-Zarr / Zarr stores (multiscale pyramids as multiscale layers, OME label images and
  ``labels/`` sub-images as label layers), HDF5 (one layer per 3D dataset), multi-page TIFF and folders of PNG/TIFF
  slices; lazy (dask), with ``scale`` = voxel size in nm. napari's builtin reader also claims ``*.zarr``, ``*.h5`` and
  ``*.tif``, so choose this one explicitly where napari asks, or in code::

      viewer.open("volume.zarr", plugin="masktwins-bio")

* **Writers** (:mod:`._writer`): label layers to OME-Zarr label images, image layers to OME-Zarr (``.zarr``), voxel
  size from the layer scale.
* **Sample data** (:mod:`._sample_data`): the synthetic source/target pair with target ground truth
  (File > Open Sample > masktwins-bio).
* **Widgets** (:mod:`._widgets`): *Predict* (probabilities and instances, streamed to Zarr, Cancel), *Adapt*
  (MaskTwins fine-tuning with live monitors, a preview on the current slice and Stop) and *Inspect* (complementary
  mask preview, per-instance table with click-to-jump, evaluation metrics).

This module deliberately imports nothing from napari or Qt, so that npe2 can locate the manifest cheaply.
"""

from __future__ import annotations

from ._qt_safety import keep_triton_out

keep_triton_out()  # before any widget can build an optimiser (torch._dynamo -> triton) with OpenGL up
