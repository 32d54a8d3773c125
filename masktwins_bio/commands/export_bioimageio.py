"""``masktwins-bio export-bioimageio MODEL OUT.zip``: share a model as a bioimage.io package."""

from __future__ import annotations

from ._common import triple


def register(sub) -> None:
    p = sub.add_parser(
        "export-bioimageio", help="write a model as a bioimage.io package (ilastik, deepImageJ, bioimageio.core)",
        description="Write a masktwins-bio model as a bioimage.io model package (spec 0.5, a .zip): MONAI "
                    "state-dict weights plus TorchScript, the voxel size (nm), normalisation, tile sizes and halo, "
                    "test input and output, cover, README and citations. 'predict', napari's Predict and Adapt "
                    "accept the package as a model again. Check it with 'bioimageio test OUT.zip'.",
        epilog="example: masktwins-bio export-bioimageio runs/vnc2fafb/model.pt vnc2fafb.bioimageio.zip "
               "--author 'Ada Lovelace'")
    p.add_argument("model", help="model file (model.pt, a checkpoint, or 'starter')")
    p.add_argument("output", help="package to write (.zip)")
    p.add_argument("--name", help="the model's name (default from the training method)")
    p.add_argument("--description", help="one-paragraph description (default from the model's metadata)")
    p.add_argument("--author", action="append", dest="authors", metavar="NAME",
                   help="an author (repeat for several; default: your login name)")
    p.add_argument("--license", default="CC-BY-4.0", help="SPDX licence id of the weights (default CC-BY-4.0)")
    p.add_argument("--test-image", help="image whose centre becomes the test input (default: synthetic EM)")
    p.add_argument("--test-voxel-size", type=triple, metavar="Z,Y,X", help="the test image's voxel size in nm")
    p.add_argument("--no-torchscript", action="store_true", help="state-dict weights only")
    p.add_argument("--overwrite", action="store_true", help="replace an existing package")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..bioimageio import export_bioimageio

    out = export_bioimageio(args.model, args.output, name=args.name, description=args.description,
                            authors=args.authors, license=args.license, test_image=args.test_image,
                            test_voxel_size=args.test_voxel_size, torchscript=not args.no_torchscript,
                            overwrite=args.overwrite)
    if not args.quiet:
        print(f"wrote {out}; check it with: bioimageio test {out}")
    return 0
