"""Tables and JSON for command output (``-o table|json``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in cells]
    return "\n".join(lines)


def emit(fmt: str, data: Any, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    if fmt == "json":
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif fmt == "yaml":
        import yaml

        yaml.safe_dump(data, sys.stdout, sort_keys=False)
    else:
        print(table(headers, rows))


def message_dict(msg: Any) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(msg, preserving_proto_field_name=True,
                         always_print_fields_with_no_presence=True)


def message_plain(msg: Any) -> dict[str, Any]:
    """Every field of ``msg`` by its proto name, as Python values: numbers stay
    numbers (``message_dict`` writes 64-bit ones as strings), an unset
    optional field is None, enums are their numbers."""
    out: dict[str, Any] = {}
    for field in msg.DESCRIPTOR.fields:
        value = getattr(msg, field.name)
        sub = field.message_type
        if sub is not None and sub.GetOptions().map_entry:
            nested = sub.fields_by_name["value"].message_type is not None
            out[field.name] = {k: message_plain(v) if nested else v for k, v in value.items()}
        elif field.is_repeated:
            out[field.name] = [message_plain(v) if sub is not None else v for v in value]
        elif field.has_presence and not msg.HasField(field.name):
            out[field.name] = None
        else:
            out[field.name] = message_plain(value) if sub is not None else value
    return out
