"""``masktwins-bio sample-data``: not implemented yet."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("sample-data", help="(not implemented yet)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..errors import UserError

    raise UserError("'sample-data' is not implemented yet")
