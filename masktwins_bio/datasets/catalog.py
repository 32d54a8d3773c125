"""The public EM datasets masktwins-bio can fetch: where each file lives, its checksum, and what it becomes.

Each :class:`Dataset` lists its files (official sources; a checksum where one is published - by the source or by a
well-kept downloader such as torch-em - or measured here from a byte-identical copy), how to turn them into OME-Zarr
with the right voxel size and label binarisation (:class:`Conversion`), and the paths under the data root that the
shipped configs read (``provides``). ``masktwins-bio download NAME DIR`` does all of it
(:func:`masktwins_bio.datasets.download`).

A file without a known checksum is verified against the one recorded at its first complete download
(``DIR/.masktwins-downloads.json``), so a later resume or re-download that differs is still caught.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

__all__ = ["RemoteFile", "Conversion", "Dataset", "DATASETS", "dataset_providing"]


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: ``url`` -> ``DIR/<path>``; ``unzip``: extract it into ``DIR/<unzip>`` afterwards."""

    url: str
    path: str
    sha256: Optional[str] = None
    unzip: Optional[str] = None


@dataclass(frozen=True)
class Conversion:
    """One OME-Zarr written from downloaded files (``src`` and ``dst`` relative to the data root).

    Attributes:
        roi: Sections to take, e.g. ``"0:400,:,:"`` (MitoEM's training sections); ``None``: all.
        binarize: Labels -> 0/1 mask with ``value >= binarize``; ``None`` keeps instance ids.
    """

    src: str
    dst: str
    voxel_size: tuple[float, float, float]
    labels: bool = False
    binarize: Optional[float] = None
    roi: Optional[str] = None


@dataclass(frozen=True)
class Dataset:
    """A public dataset: its files, conversions, the paths it provides, and how to cite it."""

    name: str
    title: str
    voxel_size: tuple[float, float, float]
    license: str
    cite: str
    files: tuple[RemoteFile, ...]
    conversions: tuple[Conversion, ...] = ()
    provides: tuple[str, ...] = field(default=())

    def all_paths(self) -> tuple[str, ...]:
        """Every path under the data root this dataset writes (files, extracted folders, conversions)."""
        return tuple(dict.fromkeys([*self.provides, *(f.path for f in self.files),
                                    *(c.dst for c in self.conversions)]))


_EPFL = "https://documents.epfl.ch/groups/c/cv/cvlab-unit/www/data/%20ElectronMicroscopy_Hippocampus"
_VNC = "https://raw.githubusercontent.com/unidesigner/groundtruth-drosophila-vnc/4a5f051466d24d8dc1e855ab55658bb1b1dcd6bf/stack1"
#: sha256 of VNC III's mitochondria masks, measured on byte-identical copies of that commit's files
_VNC_MITO_SHA256 = {
    "00.png": "511bbbe9ce687a0422728fcc5921f5e5cb553aa9601518bf193325df19a0841f",
    "01.png": "2e8a00b9d45eb0731cea31d0bdb3f001591c3a7bd4c29566437a65add85dfa90",
    "02.png": "73d3fefd0be7846ff27debbae41c52630913aa79233151b19f7cb6b4cf69e48f",
    "03.png": "e0377cb8e617ff8dda0dfcc920eb4d513d7809bfd7ccc13f059c651afe224f93",
    "04.png": "766dba641e9f15443e154b1c58f12e1a63aa526102329b42f2934430e0195919",
    "05.png": "3afce96c2e5586153f3f3f94916688ee049c1dea8af42d5b66f72a19612be91d",
    "06.png": "b9522d90da07f087418af695ab557cc5691548edcff8ca71143a6a0dd1694230",
    "07.png": "475b66b3a96970d17f2e8bfe466a61232582640fb91e62ba1643250451ce701b",
    "08.png": "7327b9c3627d6a57afecd95884b51160ae42823240e8a71c29d3d4c7c47f63e2",
    "09.png": "d276b2913dbf0505e59a01e4c7616a8ab66c2fd87431af5fa32800990f02c377",
    "10.png": "ad41c7ce9e4b44dacb509c861ab263f783fdd4624518dbdc5731a5dea171b973",
    "11.png": "c02adc9a9a9df771d7e798ad01f1048b46d404cbea9c5e7705d26b80a8edf180",
    "12.png": "66f7035ea748ebb96a73ce1b710fe129b2332b31106cb94615627e93c50e747f",
    "13.png": "0bc359db0dc5ddc31e735136695ea88015bdeb37ddfc3e6e89f604918e4765c5",
    "14.png": "44c833e85d8240e3e8bbc34d9fba07d29be9d9cdd71c18b12a4c70e597502c72",
    "15.png": "6823e4900e1457c7249b87876298f3cba5339d1a8e34c83f5a2766d024f7b54a",
    "16.png": "5ffe5edaa15ad53dee648736aeffc76fd1e256e13b40b7b34cb65e3a38fdaeef",
    "17.png": "b812bb16171af4ea1bfde98401f0a7de6a4481cc475d9856affc2fbe7aad4e73",
    "18.png": "d0eddd9355e95cb3aa0c438f831fcd8e884627e96beac4ae723d2e9c68f41176",
    "19.png": "92d28e2c28b9068c3efae4e26dd9a31b64efb8082813097d097a4b3f9ad2001f",
}
_FAFB = "https://raw.githubusercontent.com/ngchc/DA-MitoSeg/6d66579175809a700b2f47b292595e1f9937a849/fafb-valid"
#: sha256 of the FAFB crops and masks, measured on byte-identical copies of that commit's files
_FAFB_SHA256 = {
    "im/0000.png": "b2387e87e1be0f1db51613d4f29789e6758a14a6689fb56e1fcbb0e1acda6d71",
    "im/0001.png": "5d95a92a9df475f349d5eb7f4fd62aa945885d1b2ec4390e89df87efaecc5881",
    "im/0002.png": "547edffec4f0886d058bcb31a7d310043904146a13c63441bc94a68fdf49867b",
    "im/0003.png": "d65562094e45489d606a11fa185091fc761570349a053ad95c8096784793d1cd",
    "im/0005.png": "7860323ab5812ed29120de661f8c68ac947e00d6d0c06a4bd040210432cffa7b",
    "im/0006.png": "eb01c43da75e88c9632991049985e44c94288a683670beb6028de0e337da3f3d",
    "im/0007.png": "2ef171dede9b201d2488e35d116ea804919402eaf8cc2fdf16d792f45f3031f8",
    "im/0008.png": "f986473cc6b2f667c1c17e1dddf247bc3207c6ac08b391b434c72551450a029e",
    "seg/_s00.png": "ec993c4b1e014a47d574dd23deb0956fbbd948f9505b7d2761c39bb22bb071f0",
    "seg/_s01.png": "803736fe54689131365c8a9a830e94b9144f6ad49afd88f82f057458da54876b",
    "seg/_s02.png": "41e3534feef050703f58e6850f64c4266029d2d74ca9142442afd1c3a0caa7ec",
    "seg/_s03.png": "2934b0f27ec81c1aad42b17b1e7ce523994a2f4194595c9d11e57e43566388eb",
    "seg/_s05.png": "b4b061c0755791f812acc42e011dfef23a82e271c5ee9e05bffc5367f7c2f7f9",
    "seg/_s06.png": "2012d1255a992d997b19ca375a441024f5416678331a3c5f5eb685dec71abfbd",
    "seg/_s07.png": "fa98b7e350c5d16cc716d23a222c14e412178e2733bb3f06d81e1ebf886a2910",
    "seg/_s08.png": "739b454fc33b05b2fc56c718b421467f65e69a94fddf30dbd47b6fc13eb2d590",
}
#: MitoEM archives and checksums as torch-em (torch_em.data.datasets.mitoem) publishes them
_MITOEM = {
    "human": ("https://www.dropbox.com/s/z41qtu4y735j95e/EM30-H-im.zip?dl=1",
              "98fe259f36a7d8d43f99981b7a0ef8cdeba2ce2615ff91595f428ae57207a041",
              "https://www.dropbox.com/s/dhf89bc14kemw4e/EM30-H-mito-train-val-v2.zip?dl=1",
              "0e8ed292cfcd0c58701d9f4299244a1b66d6aeb506c85754c34f98a4eda0ef1b"),
    "rat": ("https://huggingface.co/datasets/pytc/EM30/resolve/main/EM30-R-im.zip",
            "6a2cac68adde5d01984542d3ee1d7753d1fa3e6eb2a042ce15ce297c95885bbe",
            "https://www.dropbox.com/s/stncdytayhr8ggz/EM30-R-mito-train-val-v2.zip?dl=1",
            "c56380ac575428a818bd293ca3509d1249999846c3702ccbf11d308acdd2ae86"),
}


def _lucchi() -> Dataset:
    names = ("training", "training_groundtruth", "testing", "testing_groundtruth")
    return Dataset(
        name="lucchi", title="Lucchi / EPFL hippocampus CA1 (FIB-SEM, 5 nm isotropic, mitochondria)",
        voxel_size=(5.0, 5.0, 5.0), license="research use, see https://www.epfl.ch/labs/cvlab/data/data-em/",
        cite="Lucchi et al., Learning structured models for segmentation of 2D and 3D imagery, IEEE TMI 2015",
        files=tuple(RemoteFile(f"{_EPFL}/{n}.tif", f"lucchi/{n}.tif") for n in names),
        conversions=tuple(Conversion(f"lucchi/{n}.tif", f"lucchi/{n}.zarr", (5.0, 5.0, 5.0),
                                     labels="groundtruth" in n, binarize=128 if "groundtruth" in n else None)
                          for n in names),
    )


def _vnc3() -> Dataset:
    files = [RemoteFile(f"{_VNC}/raw/{i:02d}.tif", f"vnc3_drosophila_mito/raw/{i:02d}.tif") for i in range(20)]
    files += [RemoteFile(f"{_VNC}/mitochondria/{i:02d}.png", f"vnc3_drosophila_mito/mitochondria/{i:02d}.png",
                         _VNC_MITO_SHA256[f"{i:02d}.png"]) for i in range(20)]
    vs = (50.0, 4.6, 4.6)
    return Dataset(
        name="vnc3", title="VNC III, Drosophila larval VNC (ssTEM, 50 x 4.6 x 4.6 nm, mitochondria)", voxel_size=vs,
        license="CC BY-NC-SA 3.0 (non-commercial)",
        cite="Gerhard et al., Segmented anisotropic ssTEM dataset of neural tissue, figshare 2013, "
             "doi:10.6084/m9.figshare.856713",
        files=tuple(files), provides=("vnc3_drosophila_mito/raw", "vnc3_drosophila_mito/mitochondria"),
        conversions=(Conversion("vnc3_drosophila_mito/raw", "vnc3_drosophila_mito/raw.zarr", vs),
                     Conversion("vnc3_drosophila_mito/mitochondria", "vnc3_drosophila_mito/mitochondria.zarr", vs,
                                labels=True, binarize=1)),
    )


def _mitoem(sample: str) -> Dataset:
    im_url, im_sha, lab_url, lab_sha = _MITOEM[sample]
    tag = sample[0].upper()
    vs = (30.0, 8.0, 8.0)
    return Dataset(
        name=f"mitoem-{sample[0]}",
        title=f"MitoEM-{tag}, {sample} cortex (mSEM, 30 x 8 x 8 nm, mitochondria instances)",
        voxel_size=vs, license="see https://mitoem.grand-challenge.org/",
        cite="Wei et al., MitoEM dataset: large-scale 3D mitochondria instance segmentation from EM images, "
             "MICCAI 2020",
        files=(RemoteFile(im_url, f"mitoem/downloads/EM30-{tag}-im.zip", im_sha, unzip=f"mitoem/EM30-{tag}-im"),
               RemoteFile(lab_url, f"mitoem/downloads/EM30-{tag}-mito-train-val-v2.zip", lab_sha,
                          unzip=f"mitoem/EM30-{tag}-mito-train-val-v2")),
        # sections 0-399: the training sections (adapted to, unlabelled); 400-499: the labelled validation sections
        conversions=(Conversion(f"mitoem/EM30-{tag}-im", f"mitoem/{sample}.zarr", vs, roi="0:400,:,:"),
                     Conversion(f"mitoem/EM30-{tag}-im", f"mitoem/{sample}_val.zarr", vs, roi="400:500,:,:"),
                     Conversion(f"mitoem/EM30-{tag}-mito-train-val-v2/mito-val-v2",
                                f"mitoem/{sample}_val_labels.zarr", vs, labels=True)),
    )


def _fafb() -> Dataset:
    # no conversion: the crops' pixel size is not stated at the source (the configs give their estimate, 40 x 8 x 8
    # nm, explicitly), and a converted copy would carry a guessed voxel size
    return Dataset(
        name="fafb",
        title="FAFB crops, adult Drosophila brain (ssTEM, 8 sections, pixel size not stated; mitochondria)",
        voxel_size=(40.0, 8.0, 8.0), license="none stated (research use; cite both papers)",
        cite="Wu et al., Uncertainty-aware label rectification for domain adaptive mitochondria segmentation, "
             "MICCAI 2021; Zheng et al., A complete electron microscopy volume of the brain of adult Drosophila "
             "melanogaster, Cell 2018",
        files=tuple(RemoteFile(f"{_FAFB}/{p}", f"fafb_mito_damitoseg/{p}", h) for p, h in _FAFB_SHA256.items()),
        provides=("fafb_mito_damitoseg/im", "fafb_mito_damitoseg/seg"),
    )


DATASETS: dict[str, Dataset] = {d.name: d for d in (_lucchi(), _vnc3(), _fafb(), _mitoem("human"), _mitoem("rat"))}


def dataset_providing(relative_path: str) -> Optional[Dataset]:
    """The dataset whose download writes ``relative_path`` (a path under the data root, as configs name it)."""
    rel = relative_path.replace("\\", "/").strip("/")
    for ds in DATASETS.values():
        for p in ds.all_paths():
            if rel == p or rel.startswith(p + "/"):
                return ds
    return None
