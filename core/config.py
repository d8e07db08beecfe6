"""Option files of `mllm sft` and `mllm grpo` (`--config FILE`): read, checked, and written back.

A config file is one flat table whose keys are the command's option names and whose values are
what the option takes, in YAML (`.yaml`, `.yml`, read by PyYAML) or TOML (`.toml`, read by the
standard library's tomllib). `batch-size` and `batch_size` are the same key:

    # runs/key.yaml                      # runs/key.toml
    llm: smollm2                         llm = "smollm2"
    steps: 300                           steps = 300
    batch-size: 8                        batch-size = 8
    lr: 2e-4                             lr = 2e-4
    bf16: null                           # (TOML has no null: leave the key out)

Checked before anything runs (ConfigError naming the file and the key): the file reads as a
table; every key is one of the command's options; every value has the option's type (an integer
option takes an integer, not 8.5 nor "8" nor true; a number option takes an integer or a float; a
flag takes true/false; a text option takes a string; null only where the option has no value by
default). Ranges and choices are the command's own checks.

YAML as PyYAML reads it is YAML 1.1, where `2e-4` (no dot) is a string; this module's loader reads
it as a number, as YAML 1.2 and TOML do, and the writer quotes any string that would read back as one.
`write_config` writes YAML that `read_config` reads back to the same values (TOML is read only).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 has no TOML reader; YAML still works
    tomllib = None

__all__ = ["ConfigError", "OptionType", "read_config", "write_config", "key_name", "CONFIG_SUFFIXES", "RUN_OPTIONS_FILE"]

CONFIG_SUFFIXES = (".yaml", ".yml", ".toml")
# A training checkpoint's copy of the options its run used (sft, grpo): `--config RUN/options.yaml` reads it.
RUN_OPTIONS_FILE = "options.yaml"


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file (and the key at fault)."""


@dataclass(frozen=True)
class OptionType:
    """What one key of a config file takes: `kind` is int, float, bool or str; `nullable` allows null."""

    kind: type
    nullable: bool = False

    def describe(self) -> str:
        name = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[self.kind]
        return f"{name} or null" if self.nullable else name

    def accepts(self, value: object) -> bool:
        if value is None:
            return self.nullable
        if self.kind is bool:
            return isinstance(value, bool)
        if isinstance(value, bool):  # true is not 1, in a config file
            return False
        if self.kind is float:
            return isinstance(value, (int, float))
        return isinstance(value, self.kind)


# YAML 1.2's exponents without a dot (1e-5, 2E+3), which YAML 1.1 reads as strings: a float for the
# loader, and for the writer a reason to quote a string that looks like one.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


class _Loader(yaml.SafeLoader):
    pass


class _Dumper(yaml.SafeDumper):
    pass


for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789."))


def key_name(key: str) -> str:
    """The option field a config key names: 'batch-size' and 'batch_size' are 'batch_size'."""
    return key.strip().replace("-", "_")


def _parse(path: Path) -> object:
    suffix = path.suffix.lower()
    if suffix not in CONFIG_SUFFIXES:
        raise ConfigError(f"--config {path}: the format follows the extension: .yaml, .yml (YAML) or .toml (TOML)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read it ({exc.strerror or exc})") from None
    if suffix == ".toml" and tomllib is None:
        raise ConfigError(f"--config {path}: reading TOML needs Python 3.11 or later (tomllib); write it as YAML")
    errors = (yaml.YAMLError, UnicodeDecodeError) + ((tomllib.TOMLDecodeError,) if tomllib else ())
    try:
        if suffix == ".toml":
            return tomllib.loads(data.decode("utf-8"))
        return yaml.load(data, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except errors as exc:
        raise ConfigError(f"--config {path} is not valid {'TOML' if suffix == '.toml' else 'YAML'}: "
                          f"{' '.join(str(exc).split())}") from None


def read_config(path: str | os.PathLike, options: Mapping[str, OptionType], *, command: str = "") -> dict:
    """The values of the config file `path`, keyed by option field ('batch_size'), checked
    against `options` (field -> OptionType); ConfigError naming the file and the key otherwise.
    Integers given to a number option come back as floats. An empty file is an empty table."""
    path = Path(path)
    table = _parse(path)
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise ConfigError(f"--config {path}: expected a table of option names and values, got {type(table).__name__}")
    values: dict = {}
    spelled: dict[str, str] = {}
    for key, value in table.items():
        if not isinstance(key, str):
            raise ConfigError(f"--config {path}: key {key!r} is not an option name")
        name = key_name(key)
        if name not in options:
            close = difflib.get_close_matches(name, list(options), n=1)
            hint = f" (did you mean {close[0].replace('_', '-')!r}?)" if close else ""
            raise ConfigError(f"--config {path}: unknown key {key!r}{hint}; {command or 'the command'} takes "
                              f"{', '.join(n.replace('_', '-') for n in options)}")
        if name in spelled:
            raise ConfigError(f"--config {path}: {spelled[name]!r} and {key!r} name the same option")
        kind = options[name]
        if not kind.accepts(value):
            raise ConfigError(f"--config {path}: {key!r} must be {kind.describe()}, got {value!r} "
                              f"({'null' if value is None else type(value).__name__})")
        spelled[name] = key
        values[name] = float(value) if kind.kind is float and value is not None else value
    return values


def write_config(values: Mapping[str, object]) -> str:
    """`values` (option field -> value) as YAML with the command-line spelling of the keys
    ('batch-size'), in their order; read_config reads it back to the same values."""
    table = {name.replace("_", "-"): value for name, value in values.items()}
    return yaml.dump(table, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=10_000)
