"""Loading task rows from local files or the Hugging Face hub, with deterministic subsampling."""

from __future__ import annotations

import codecs
import csv
import io
import json
import random
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Any, TypeVar

import datasets

from softprompt.data.tasks import Example, Task
from softprompt.errors import SoftpromptError
from softprompt.model.hub import ask_hub, offline_hub

T = TypeVar("T")

# file extension -> (reader, csv.reader options); tsv cells are never quoted (GLUE style). csv/tsv cells
# are read as the exact text in the file (an empty cell is None) and json/jsonl values keep their JSON types
FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
    ".jsonl": ("jsonl", {}),
    ".json": ("json", {}),
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"delimiter": "\t", "quoting": csv.QUOTE_NONE}),
}
FILE_FLAGS = "--train-file/--validation-file"


def load_rows(
    task: Task,
    split: str,
    data_file: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    flag: str = FILE_FLAGS,
) -> list[dict]:
    """Rows of ``data_file`` if given (``flag``: the option that named it), else of the task's hub dataset ``split``.

    ``limit`` keeps at most that many rows, chosen by ``subsample(rows, limit, seed)``.
    """
    rows = read_file(data_file, flag) if data_file else _read_hub(task, split)
    return subsample(rows, limit, seed)


def load_examples(
    task: Task,
    split: str,
    data_file: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    grouped: bool = False,
    flag: str = FILE_FLAGS,
) -> list[Example]:
    """Examples of ``task`` from ``data_file`` or the hub (see ``load_rows``).

    ``limit`` counts Examples, not stored rows (a MultiRC paragraph holds many Examples; with
    ``grouped=True`` an E2E input with all its references is one Example).
    """
    rows = load_rows(task, split, data_file, flag=flag)
    origin = data_file or f"{task.hub.describe()} {split} split"  # load_rows checked task.hub
    examples = task.to_examples(rows, grouped=grouped, origin=origin)
    if not examples:  # rows that expand to nothing, e.g. MultiRC paragraphs without questions
        raise SoftpromptError(
            f"the {split} split ({origin}) gives no {task.name} examples from its {len(rows)} row(s); "
            "pass a file with labelled examples"
        )
    return subsample(examples, limit, seed)


def subsample(items: list[T], limit: int | None, seed: int = 0) -> list[T]:
    """At most ``limit`` items, in their original order, picked by a ``seed``-ed shuffle.

    The same seed always picks the same items and subsets are nested: for one seed the
    50-item subset lies inside the 100-item one, which keeps low-data curves comparable.
    """
    if limit is None:
        return items
    if limit < 1:
        raise SoftpromptError(
            f"the number of examples to use must be positive, got {limit}; "
            "pass a positive --train-size/--eval-size/--limit or leave it out to use all"
        )
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    return [items[i] for i in sorted(order[:limit])]


def read_file(data_file: str, flag: str = FILE_FLAGS) -> list[dict]:
    """All rows of a local .jsonl/.json/.csv/.tsv file, as dicts; ``flag`` names the option that gave it."""
    path = Path(data_file)
    if path.is_dir():
        raise SoftpromptError(
            f"data file {data_file} is a folder; pass a file (.jsonl, .json, .csv or .tsv) with {flag}"
        )
    if not path.is_file():
        raise SoftpromptError(f"data file {data_file} not found; check the path given to {flag}")
    if path.suffix.lower() not in FORMATS:
        raise SoftpromptError(
            f"unsupported file type {path.suffix or '(none)'!r} of {data_file}; use a {', '.join(FORMATS)} file"
        )
    no_rows = SoftpromptError(f"data file {data_file} has no rows; pass a file with data")
    if not _has_rows(path):
        raise no_rows
    reader, options = FORMATS[path.suffix.lower()]
    if reader == "csv":
        rows = _read_csv(path, data_file, options)
    elif reader == "jsonl":
        rows = _read_jsonl(path, data_file)
    else:
        rows = _read_json(path, data_file)
    if not rows:  # e.g. a csv header followed by lines that are blank to csv but not to _has_rows
        raise no_rows
    return rows


def _read_json(path: Path, data_file: str) -> list[dict]:
    """The rows of a .json file, each value keeping its JSON type, in the layouts ``datasets``' json builder reads:
    an array of objects, an object of equal-length columns (``{"text": [...], "label": [...]}``), or JSON Lines."""
    text = _text(path, data_file)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:  # several top-level values: JSON Lines
        return _json_lines(
            text.split("\n"),
            lambda number, problem: SoftpromptError(
                f"could not read {data_file} (line {number} {problem}); check that it is valid json: an array of objects, "
                "or one object per line"
            ),
        )
    if isinstance(data, dict):
        columns = list(data.values())
        if columns and all(isinstance(c, list) for c in columns) and len({len(c) for c in columns}) == 1:
            return [dict(zip(data, values)) for values in zip(*columns)]
        return [data]
    if isinstance(data, list) and all(isinstance(row, dict) for row in data):
        return data
    shape = type(data).__name__ if not isinstance(data, list) else "an array holding a non-object"
    raise SoftpromptError(
        f"could not read {data_file} (the JSON value is {shape}); give an array of objects, "
        'e.g. [{"text": "...", "label": 1}]'
    )


def _read_jsonl(path: Path, data_file: str) -> list[dict]:
    """The rows of a JSON Lines file, one JSON object per non-blank line, each value keeping its JSON type
    (``datasets`` would turn a column of ints that also holds a float into floats: 2 -> 2.0)."""
    raw_lines = (
        path.read_bytes().removeprefix(codecs.BOM_UTF8).split(b"\n")
    )  # decoded line by line: the first bad line is named
    lines = (_utf8(raw, data_file, number) for number, raw in enumerate(raw_lines, start=1))
    return _json_lines(
        lines,
        lambda number, problem: SoftpromptError(
            f"could not read {data_file} (line {number} {problem}); check that it is valid jsonl"
        ),
    )


def _json_lines(lines: Iterable[str], error: Callable[[int, str], SoftpromptError]) -> list[dict]:
    """The JSON object of every non-blank line; the first bad line raises ``error(its number, the problem)``."""
    rows = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            row, problem = _json_object(line)
            if problem:
                raise error(number, problem)
            rows.append(row)
    return rows


def _json_object(line: str) -> tuple[dict | None, str | None]:
    """(the JSON object on ``line``, None), or (None, what is wrong with it)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        return None, f"is not valid JSON ({error.msg})"
    return (row, None) if isinstance(row, dict) else (None, f"is a JSON {type(row).__name__}, not an object")


def read_json_lines(lines: Iterable[str], origin: str = "stdin") -> list[dict]:
    """Rows from JSON Lines text (e.g. standard input): one JSON object per non-blank line."""
    rows = _json_lines(
        lines,
        lambda number, problem: SoftpromptError(
            f'{origin} line {number} {problem}; send one JSON object per line, e.g. {{"sentence": "..."}}'
        ),
    )
    if not rows:
        raise SoftpromptError(f"{origin} has no rows; send one JSON object per line")
    return rows


def _read_csv(path: Path, data_file: str, options: dict[str, Any]) -> list[dict]:
    """The rows of a csv/tsv file (``options``: its ``csv.reader`` dialect) as dicts of the exact text of each cell.

    No cell is guessed at: ``007``, ``3.10`` and ``NA`` stay as written; only an empty cell is None (a missing
    value). Blank lines are skipped; every other row must have the header's number of fields.
    """
    reader = csv.reader(io.StringIO(_text(path, data_file), newline=""), **options)
    limit = csv.field_size_limit(2**31 - 1)  # a long document is no error (csv's default stops at 128 KiB)
    try:
        header = next((row for row in reader if row), [])
        _check_header(header, data_file, reader.line_num)
        rows = [_csv_row(header, row, path, reader.line_num, options) for row in reader if row]
    except csv.Error as error:
        raise SoftpromptError(
            f"could not read {data_file} (line {reader.line_num}: {error}); check that it is valid {path.suffix[1:]}"
        ) from None
    finally:
        csv.field_size_limit(limit)
    return rows


def _check_header(header: list[str], data_file: str, line: int) -> None:
    """Refuse a csv/tsv header with an empty or repeated column name (a row could not tell those columns apart)."""
    if "" in header:
        raise SoftpromptError(
            f"{data_file} line {line}: column {header.index('') + 1} of the header has no name; "
            "name every column or drop the unnamed one (pandas writes its index there: save with index=False)"
        )
    repeated = [name for name in dict.fromkeys(header) if header.count(name) > 1]
    if repeated:
        raise SoftpromptError(
            f"{data_file} line {line}: the header names column{'s' * (len(repeated) > 1)} "
            f"{', '.join(map(repr, repeated))} more than once; give each column its own name"
        )


def _csv_row(header: list[str], cells: list[str], path: Path, line: int, options: dict[str, Any]) -> dict:
    """One csv/tsv row as a dict, an empty cell as None; a row without the header's number of fields is refused."""
    if len(cells) != len(header):
        fix = (
            'quote fields that hold commas, e.g. "a, b"'
            if options.get("delimiter", ",") == ","
            else "a tab inside a field splits it; remove it"
        )
        raise SoftpromptError(
            f"{path} line {line} has {len(cells)} fields but the header has {len(header)} ({', '.join(header)}); {fix}"
        )
    return {name: cell if cell else None for name, cell in zip(header, cells)}


def _text(path: Path, data_file: str) -> str:
    """The whole file decoded as UTF-8, without a byte-order mark (``_utf8``)."""
    return _utf8(path.read_bytes().removeprefix(codecs.BOM_UTF8), data_file)


def _utf8(data: bytes, data_file: str, first_line: int = 1) -> str:
    """``data`` (lines of a file from ``first_line`` on) decoded as UTF-8; other bytes are a one-line error."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = first_line + data[: error.start].count(b"\n")
        raise SoftpromptError(f"could not read {data_file} (line {line} is not UTF-8 text); save it as UTF-8") from None


def _has_rows(path: Path) -> bool:
    """Whether the file holds data beyond blank lines (and, for csv/tsv, beyond the header)."""
    needed = 2 if FORMATS[path.suffix.lower()][0] == "csv" else 1
    with open(path, encoding="utf-8", errors="replace") as handle:
        filled = (line for line in handle if line.strip())
        return sum(1 for _, _ in zip(range(needed), filled)) == needed


def _read_hub(task: Task, split: str) -> list[dict]:
    """All rows of the task's hub dataset split (its ``HubSource``: id, config, revision, files)."""
    if task.hub is None:
        raise SoftpromptError(f"task {task.name} has no hub dataset; pass local files with {FILE_FLAGS}")
    if split not in task.splits:
        raise SoftpromptError(f"unknown split {split!r} for {task.name}; choose one of {', '.join(task.splits)}")
    answer = ask_hub(task.hub.dataset, "README.md", repo_type="dataset", cache_first=False)  # a cached split too
    try:
        with (
            offline_hub() if answer.status == "unreachable" else nullcontext()
        ):  # the cache, not half a minute of retries
            return datasets.load_dataset(**task.hub.load_kwargs(task.splits[split])).to_list()
    except Exception as error:
        if answer.status == "unreachable":
            raise SoftpromptError(
                f"cannot reach the Hugging Face hub ({answer.detail}) and the {split} split of {task.hub.describe()} is "
                f"not in the local cache; pass local files with {FILE_FLAGS} (--data-file for ensemble-eval), or load "
                "the dataset once while online"
            ) from None
        raise SoftpromptError(
            f"could not load the {split} split of {task.hub.describe()} from the Hugging Face hub "
            f"({_one_line(error)}); pass local files with {FILE_FLAGS} (--data-file for "
            "ensemble-eval), or pin another revision with --dataset-revision"
        ) from None


def _one_line(error: BaseException) -> str:
    """The root cause of an exception as one short line."""
    while error.__cause__ is not None:
        error = error.__cause__
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return lines[0][:200]
