"""Task YAML files: found in the plugins' task folders, validated against their type's config model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bench.engine.expectations import check_syntax
from bench.errors import BenchError
from bench.plugin.registry import Plugins
from bench.plugin.specs import TaskType


class TaskConfig(BaseModel):
    """Base of every task type's config: unknown fields are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    description: str
    layers: list[int] = Field(min_length=1, description="layers to run; negative values count from the last")
    limit: int | None = Field(None, ge=1, description="items to use; `bench run --limit` overrides")
    seed: int = 0
    expect: list[str] = Field(default_factory=list, description="checked after a run; see bench/expectations.py")

    @field_validator("expect")
    @classmethod
    def _expectations_parse(cls, value: list[str]) -> list[str]:
        return [check_syntax(text) for text in value]


@dataclass(frozen=True)
class Task:
    name: str
    path: Path
    type: TaskType
    config: TaskConfig


def task_files(plugins: Plugins) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in plugins.task_dirs():
        for path in sorted(folder.glob("*.yaml")):
            if path.stem in found:
                raise BenchError(f"task {path.stem!r} is defined twice: {found[path.stem]} and {path}.")
            found[path.stem] = path
    return found


def load_task(plugins: Plugins, name_or_path: str) -> Task:
    """A task by name (a YAML stem in any task folder) or by path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        files = task_files(plugins)
        if name_or_path not in files:
            raise BenchError(
                f"unknown task {name_or_path!r}. Known: {', '.join(sorted(files)) or 'none'}. "
                "`bench list` shows them; a path to a .yaml file also works."
            )
        path = files[name_or_path]
    if not path.exists():
        raise BenchError(f"task file {path} does not exist.")
    return parse_task(plugins, path)


def parse_task(plugins: Plugins, path: Path) -> Task:
    raw = _read_with_includes(path, ())
    if "type" not in raw:
        raise BenchError(f"{path}: field 'type' is missing; known task types: {_type_names(plugins)}.")
    if not isinstance(raw["type"], str) or raw["type"] not in plugins.task_types:
        raise BenchError(f"{path}: field 'type': unknown task type {raw['type']!r}; known: {_type_names(plugins)}.")
    task_type = plugins.task_types.get(raw["type"])
    try:
        config = task_type.config_model.model_validate(raw)
    except ValidationError as err:
        raise BenchError(f"{path}: " + "; ".join(_explain(task_type.config_model, e) for e in err.errors())) from None
    return Task(path.stem, path, task_type, config)


def _read_with_includes(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """The file's mapping laid over the file named by its `include:` key, as lm-eval's task YAMLs do.

    A variant task (another sweep of the same erasure, say) then states only what differs, and
    cannot drift from its base when someone edits the base. The merge is by top-level key: a key
    given here replaces the included one whole, so a variant's `methods:` is exactly what it says.
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise BenchError(f"{path}: not valid YAML: {err}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise BenchError(f"{path}: cannot be read as a task file ({err}).") from err
    if not isinstance(raw, dict):
        raise BenchError(f"{path}: a task file must be a mapping with at least 'type' and 'description'.")
    if "include" not in raw:
        return raw
    name = raw.pop("include")
    if not isinstance(name, str) or not name.strip():
        raise BenchError(f"{path}: field 'include' must be a file name next to it, such as 'privacy_erasure.yaml'.")
    base = (path.parent / name).resolve()
    if base in chain or base == path.resolve():
        cycle = " -> ".join(str(p) for p in (*chain, path.resolve(), base))
        raise BenchError(f"{path}: task files include each other in a cycle: {cycle}. Remove one 'include'.")
    if not base.is_file():
        raise BenchError(f"{path}: field 'include': {base} does not exist (it is read relative to {path.parent}).")
    return _read_with_includes(base, (*chain, path.resolve())) | raw


def _type_names(plugins: Plugins) -> str:
    return ", ".join(entry.name for entry in plugins.task_types)


def _explain(model: type[BaseModel], error: Any) -> str:
    """'field a.b: <problem> (allowed fields here: ...)' for one pydantic error."""
    loc = [str(part) for part in error["loc"]]
    field = ".".join(loc)
    if error["type"] == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        return f"field {field!r} is not allowed (allowed here: {', '.join(allowed)})"
    return f"field {field!r}: {error['msg']} (got {error.get('input')!r})"


def _fields_at(model: type[BaseModel], loc: list[str]) -> list[str]:
    for part in loc:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)
