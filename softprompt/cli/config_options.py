"""Click options generated from settings dataclasses, and option values read from a file (``--config``).

A dataclass field becomes ``--kebab-name`` with the field's type and default, and its metadata's ``help``, ``choices``,
``path``, ``multiple`` and ``cli_default`` (``softprompt.training.settings``); a bool is a flag, a tuple of names a
comma-separated value. So a setting shared by several commands is declared once, in its dataclass.

``--config FILE`` (YAML or TOML) gives option values by option name, spelt with ``-`` or ``_``; they become the
command's defaults, so an option given on the command line wins.
"""

from __future__ import annotations

import difflib
import sys
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import Any

import click

from softprompt.errors import SoftpromptError

CONFIG_SUFFIXES = (".yaml", ".yml", ".toml")


def with_options(command: Callable, options: list[Callable]) -> Callable:
    """``command`` with ``options`` added, listed in the given order in ``--help``."""
    for option in reversed(options):
        command = option(command)
    return command


def settings_options(
    *sources: type, only: Iterable[str] | None = None, exclude: Iterable[str] = ()
) -> Callable[[Callable], Callable]:
    """A decorator adding one option per field of the ``sources`` dataclasses, in order: those named in ``only`` (all
    by default) but ``exclude`` and fields that have no option (``option=False``)."""
    only, exclude = None if only is None else set(only), set(exclude)
    chosen = [
        (source, item)
        for source in sources
        for item in fields(source)
        if item.metadata.get("option", True) and item.name not in exclude and (only is None or item.name in only)
    ]
    return lambda command: with_options(command, [field_option(item, source) for source, item in chosen])


def field_option(item: Field, source: type, **changes: Any) -> Callable[[Callable], Callable]:
    """The click option of dataclass field ``item`` (of ``source``); ``changes`` override click.option's arguments."""
    meta, kind = item.metadata, _value_type(typing.get_type_hints(source)[item.name])
    flag = "--" + item.name.replace("_", "-")
    default = meta.get("cli_default", None if item.default is MISSING else item.default)
    if kind is bool:
        arguments = dict(is_flag=True)
    elif meta.get("multiple"):
        arguments = dict(multiple=True, type=click.Path() if meta.get("path") else str)
    else:
        if kind is tuple:  # names, comma-separated
            kind, default = str, default if isinstance(default, str) else ",".join(default)
        value_type = click.Choice(meta["choices"]) if "choices" in meta else click.Path() if meta.get("path") else kind
        arguments = dict(type=value_type, default=default, show_default=default is not None)
    return click.option(flag, **{**arguments, "help": meta["help"], **changes})


def setting_option(source: type, name: str, **changes: Any) -> Callable[[Callable], Callable]:
    """The click option of the field called ``name`` of dataclass ``source``, with ``changes`` (``field_option``)."""
    (item,) = [item for item in fields(source) if item.name == name]
    return field_option(item, source, **changes)


def _value_type(hint: Any) -> type:
    """The type a field's values take: ``int | None`` -> int, ``tuple[str, ...]`` -> tuple."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    return typing.get_origin(hint) or hint


def config_option(aliases: dict[str, str] | None = None) -> Callable[[Callable], Callable]:
    """``--config FILE``: option values from a YAML or TOML file, keyed by option name (``-`` or ``_``); ``aliases``
    maps other keys a file may use to option names (sweep: a train recipe's ``model`` is its ``models``)."""

    def load(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is not None:
            given = read_config(value)
            ctx.default_map = {**(ctx.default_map or {}), **config_defaults(ctx.command, given, value, aliases or {})}
        return value

    return click.option(
        "--config",
        type=click.Path(dir_okay=False),
        is_eager=True,  # read before the other options take their defaults
        expose_value=False,
        callback=load,
        help="YAML or TOML file of option values, keyed by option name (e.g. prompt_length: 100 or "
        "prompt-length = 100): a recipe, such as those in the repository's recipes/ folder; options given on the "
        "command line win",
    )


def read_config(path: str) -> dict[str, Any]:
    """The top-level table of a YAML or TOML file, as a dict; a one-line ``SoftpromptError`` if it has none."""
    suffix = Path(path).suffix.lower()
    if suffix not in CONFIG_SUFFIXES:
        raise SoftpromptError(f"--config {path}: give a .yaml, .yml or .toml file")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise SoftpromptError(f"--config {path}: cannot read it ({error.strerror or error})") from None
    if suffix == ".toml":
        toml = _toml()
        try:
            values = toml.loads(text)
        except toml.TOMLDecodeError as error:
            raise SoftpromptError(f"--config {path} is not valid TOML: {error}") from None
    else:
        import yaml

        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise SoftpromptError(f"--config {path} is not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(values, dict):
        raise SoftpromptError(f"--config {path} must hold option: value pairs, e.g. prompt_length: 100")
    return values


def _toml() -> types.ModuleType:
    """Python's TOML reader (``tomllib``, Python 3.11+; ``tomli`` before)."""
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    import tomli

    return tomli


def config_defaults(command: click.Command, given: dict[str, Any], path: str, aliases: dict[str, str]) -> dict:
    """``given`` (a config file's keys and values) as ``command``'s default map: each key the name of one of its options
    (``-`` or ``_``, or one of ``aliases``), a list for a comma-separated option joined, one value for a repeatable
    option listed. Null values are left out (the option's own default)."""
    options = {
        opt.lstrip("-").replace("-", "_"): param
        for param in command.params
        if isinstance(param, click.Option) and param.name not in ("config", "help")
        for opt in param.opts
    }
    defaults = {}
    for key, value in given.items():
        name = str(key).replace("-", "_")
        param = options.get(aliases.get(name, name))
        if param is None:
            nearest = difflib.get_close_matches(name, options, n=1, cutoff=0.0)
            raise SoftpromptError(
                f"--config {path}: no option {key!r} in {command.name}; the nearest is "
                f"--{nearest[0].replace('_', '-')} (see 'softprompt {command.name} --help')"
            )
        if isinstance(value, dict):
            raise SoftpromptError(f"--config {path}: {key} takes a value, not a table")
        if value is None:
            continue
        if isinstance(value, list) and not param.multiple:
            value = ",".join(map(str, value))
        elif param.multiple and not isinstance(value, list):
            value = [value]
        defaults[param.name] = value
    return defaults
