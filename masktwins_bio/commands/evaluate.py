"""``masktwins-bio evaluate``: not implemented yet."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="(not implemented yet)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..errors import UserError

    raise UserError("'evaluate' is not implemented yet")
