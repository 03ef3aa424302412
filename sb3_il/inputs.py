"""Data files sb3-il did not write (run folders, Hub repos, datasets, user paths), read as plain data within bounds.

Every JSON and YAML file a command reads goes through :func:`read_json` / :func:`read_yaml` (or
:func:`parse_json` for JSON held in an archive): at most :data:`MAX_BYTES`, nested at most :data:`MAX_DEPTH`
deep, at most :data:`MAX_NODES` values, and YAML through a safe loader that builds no object (it knows one
extra tag, the ``OrderedDict`` the RL Zoo writes). A file past a bound, or one that does not parse, is a
one-line :class:`UserError` naming the file and the fix: never a ``RecursionError`` traceback thousands of
lines long, nor a process that runs out of memory.
"""

from __future__ import annotations

import collections
import datetime
import json
from pathlib import Path
from typing import Any

import yaml

from sb3_il.errors import UserError, first_line

#: Largest JSON or YAML file read (run configs and results are kilobytes; a Zoo config.yml too).
MAX_BYTES = 64 * 2**20
#: Deepest nesting accepted: sb3-il's own files nest 4 deep, SB3's zip ``data`` 5.
MAX_DEPTH = 32
#: Most values in one file (YAML aliases can make a small file expand into many).
MAX_NODES = 10_000_000


def read_json(path: Path, fix: str = "re-run what wrote it") -> Any:
    """``path``'s JSON as plain data within the bounds, or a one-line error ending in ``fix``."""
    return parse_json(_read_bytes(path, fix), str(path), fix)


def parse_json(text: str | bytes, what: str, fix: str = "re-run what wrote it") -> Any:
    """JSON text (from ``what``, named in errors) as plain data within the bounds."""
    if len(text) > MAX_BYTES:
        raise UserError(f"{what} is larger than {MAX_BYTES >> 20} MiB; {fix}")
    try:
        value = json.loads(text)
    except RecursionError:
        raise UserError(f"{what} nests deeper than {MAX_DEPTH} levels; {fix}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise UserError(f"{what} is not valid JSON ({first_line(err)}); {fix}") from None
    check_tree(value, what, fix)
    return value


class ZooLoader(yaml.SafeLoader):
    """YAML's safe loader plus the one tag RL Zoo config files use, an ``OrderedDict`` of pairs."""


def _ordered_dict(loader: ZooLoader, node: yaml.Node) -> collections.OrderedDict:
    (pairs,) = loader.construct_sequence(node, deep=True)
    return collections.OrderedDict((key, value) for key, value in pairs)


ZooLoader.add_constructor("tag:yaml.org,2002:python/object/apply:collections.OrderedDict", _ordered_dict)


def read_yaml(path: Path, fix: str = "fix or replace it") -> Any:
    """A YAML file from anywhere, data only; a tag that would build an object is a one-line error."""
    try:
        loader = ZooLoader(_read_bytes(path, fix).decode("utf-8"))
        try:
            value = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.constructor.ConstructorError as err:
        raise UserError(
            f"{path} holds a YAML tag that would build an object ({first_line(err.problem)}); refused"
        ) from None
    except RecursionError:
        raise UserError(f"{path} nests deeper than {MAX_DEPTH} levels; {fix}") from None
    except (UnicodeDecodeError, yaml.YAMLError, ValueError, TypeError) as err:
        raise UserError(f"cannot read {path}: {first_line(err)}; {fix}") from None
    check_tree(value, str(path), fix)
    return value


def read_mapping(path: Path, what: str, fix: str = "re-run what wrote it") -> dict[str, Any]:
    """A JSON (``.json``) or YAML file that must hold a mapping, e.g. ``results.json`` or ``provenance.json``."""
    value = read_json(path, fix) if Path(path).suffix == ".json" else read_yaml(path, fix)
    if not isinstance(value, dict):
        raise UserError(f"{path} must hold a mapping ({what}), not {type(value).__name__}; {fix}")
    return value


def check_tree(value: Any, what: str, fix: str = "re-run what wrote it") -> None:
    """Plain data (mappings, lists, strings, numbers, booleans, None) nested at most :data:`MAX_DEPTH` deep,
    with at most :data:`MAX_NODES` values; walked without recursion, so any input gets an answer."""
    stack, seen = [(value, 0)], 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if depth > MAX_DEPTH:
            raise UserError(f"{what} nests deeper than {MAX_DEPTH} levels; {fix}")
        if seen > MAX_NODES:
            raise UserError(f"{what} holds more than {MAX_NODES} values; {fix}")
        if isinstance(item, dict):
            stack += [(v, depth + 1) for v in item.values()]
            stack += [(k, depth + 1) for k in item]
        elif isinstance(item, list | tuple):
            stack += [(v, depth + 1) for v in item]
        elif not (item is None or isinstance(item, str | int | float | bool | bytes | datetime.date)):
            raise UserError(f"{what} holds a {type(item).__name__}, which is not plain data; {fix}")


def _read_bytes(path: Path, fix: str) -> bytes:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise UserError(f"{path} is larger than {MAX_BYTES >> 20} MiB; {fix}")
        if not path.is_file():
            raise UserError(f"{path} is not a regular file; {fix}")
        return path.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read {path}: {first_line(err)}; {fix}") from None


def number(mapping: dict[str, Any], key: str, what: str, fix: str = "re-run what wrote it") -> float | None:
    """``mapping[key]`` as a finite-or-NaN float, None where absent; any other type is a one-line error."""
    value = mapping.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserError(f"{what}: {key} must be a number, got {value!r:.40}; {fix}")
    return float(value)
