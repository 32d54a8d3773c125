"""``masktwins-bio predict``: not implemented yet."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("predict", help="(not implemented yet)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..errors import UserError

    raise UserError("'predict' is not implemented yet")
