"""``masktwins-bio compare``: not implemented yet."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("compare", help="(not implemented yet)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..errors import UserError

    raise UserError("'compare' is not implemented yet")
