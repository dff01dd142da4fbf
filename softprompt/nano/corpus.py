"""Build t5-nano's pre-training corpus from Debian documentation and dictionary packages.

``python -m softprompt.nano.corpus --out DIR`` fetches each package with ``apt-get download`` and
unpacks it with ``dpkg -x`` (nothing is installed), turns its HTML, dictd, WordNet, fortune and POD
files into plain-prose paragraphs, deduplicates paragraphs across the whole corpus, splits them
into train/validation by a hash of their text, and tokenises both splits with the vendored T5
vocabulary into raw ``uint16`` files (``train.bin``, ``validation.bin``; paragraphs separated by
EOS). ``manifest.json`` records every package's name, version, .deb digest, licences (from its
``usr/share/doc/<pkg>/copyright``), sizes and token counts. Each stage is skipped when its output
already exists, so an interrupted build resumes where it stopped. ``TokenCorpus`` and
``window_starts`` are the reading side: memory-mapped splits and the seeded order of their windows.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache, partial
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
from transformers import PreTrainedTokenizerBase

from softprompt.io.atomic import atomic_write, atomic_write_text
from softprompt.model.loading import TOKENIZER_DIR, load_tokenizer

VALIDATION_PERCENT = 1  # share of (deduplicated) paragraphs held out, chosen by text hash
MIN_WORDS = 5
SPLITS = ("train", "validation")
EXCLUDED_HTML = re.compile(
    r"(^|/)(_sources|_static|_images|_modules|_downloads)/|(^|/)(genindex|search|py-modindex|modindex)[^/]*\.html$"
)


@dataclass(frozen=True)
class Source:
    """A Debian package and which of its files (``pattern``, a regex on the path) hold prose of ``kind``."""

    package: str
    kind: str  # a key of EXTRACTORS
    pattern: str


PACKAGES: tuple[Source, ...] = (
    Source("dict-gcide", "dictd", r"usr/share/dictd/.*\.dict\.dz$"),
    Source("wordnet-base", "wordnet", r"usr/share/wordnet/data\.(noun|verb|adj|adv)$"),
    Source("dict-foldoc", "dictd", r"usr/share/dictd/.*\.dict\.dz$"),
    Source("dict-devil", "dictd", r"usr/share/dictd/.*\.dict\.dz$"),
    Source("jargon-text", "text", r"usr/share/doc/jargon-text/jargon\.txt\.gz$"),
    Source("fortunes-min", "fortune", r"usr/share/games/fortunes/[a-z-]+$"),
    Source("fortunes", "fortune", r"usr/share/games/fortunes/[a-z-]+$"),
    Source("gnu-standards", "html", r"usr/share/doc/gnu-standards/.*\.html$"),
    Source("perl-doc", "pod", r"usr/share/perl/[^/]+/pod/.*\.pod$"),
    Source("python3.11-doc", "html", r"usr/share/doc/python3\.11/html/.*\.html$"),
    Source("python-django-doc", "html", r"usr/share/doc/python-django-doc/html/.*\.html$"),
    Source("postgresql-doc-15", "html", r"usr/share/doc/postgresql-doc-15/html/.*\.html$"),
    Source("git-doc", "html", r"usr/share/doc/git-doc/.*\.html$"),
    Source("debian-reference-en", "html", r"usr/share/debian-reference/.*\.en\.html$"),
    Source("debian-handbook", "html", r"usr/share/doc/debian-handbook/html/en-US/.*\.html$"),
    Source("debian-faq", "html", r"usr/share/doc/debian/FAQ/.*\.html$"),
    Source("debian-policy", "html", r"usr/share/doc/debian-policy/.*\.html$"),
    Source("developers-reference", "html", r"usr/share/developers-reference/.*\.html$"),
    Source("python-sqlalchemy-doc", "html", r"usr/share/doc/python-sqlalchemy-doc/html/.*\.html$"),
    Source("sqlite3-doc", "html", r"usr/share/doc/sqlite3/.*\.html$"),
)

# typographic punctuation -> ASCII, so the English-only (ASCII share) filter keeps curly-quoted prose
PUNCTUATION = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2026": "...",
        "\u00a0": " ",
        "\u00b6": " ",
        "\u2022": " ",
    }
)


class _HTMLText(HTMLParser):
    """Text of an HTML page as paragraphs: block elements end a paragraph, code and navigation are dropped."""

    SKIP = {"script", "style", "head", "pre", "nav", "svg", "math", "textarea"}
    BLOCK = {
        "p",
        "div",
        "li",
        "dd",
        "dt",
        "td",
        "th",
        "tr",
        "br",
        "hr",
        "blockquote",
        "section",
        "table",
        "ul",
        "ol",
        "dl",
        "title",
        "article",
        "header",
        "footer",
        "caption",
        "figcaption",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self._current: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:  # noqa: D102 - HTMLParser API
        if tag in self.SKIP:
            self._skipping += 1
        elif tag in self.BLOCK:
            self._flush()

    def handle_endtag(self, tag: str) -> None:  # noqa: D102 - HTMLParser API
        if tag in self.SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self.BLOCK:
            self._flush()

    def handle_data(self, data: str) -> None:  # noqa: D102 - HTMLParser API
        if not self._skipping:
            self._current.append(data)

    def _flush(self) -> None:
        if self._current:
            self.paragraphs.append("".join(self._current))
            self._current = []


def html_paragraphs(text: str) -> list[str]:
    """Paragraphs of visible prose in an HTML page."""
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    parser.handle_endtag("p")
    return parser.paragraphs


def dictd_paragraphs(text: str) -> list[str]:
    """Definitions of a dictd database: blank-line separated, without pronunciations, cross-reference
    braces, domain tags or source tags such as ``[1913 Webster]``."""
    text = re.sub(r"\\[^\\\n]*\\", "", text)  # \Ab*di"cate\ pronunciations (GCIDE)
    text = re.sub(r"\([^()\n]*\[[a-z]{1,2}[\^=.`~\"]\][^()\n]*\)", "", text)  # (r[a^]b"[a^]t) pronunciations
    text = re.sub(r"\[[^\]\n]*(Webster|PJC|WordNet|Dict\.|Chambers)[^\]\n]*\]", "", text)
    text = re.sub(r"<[a-z][a-z ,-]*>", "", text).replace("{", "").replace("}", "")  # FOLDOC <tags>, {links}
    return text_paragraphs(text)


def text_paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs of a plain-text file."""
    return re.split(r"\n\s*\n", text)


def wordnet_paragraphs(text: str) -> list[str]:
    """One ``words: gloss`` paragraph per WordNet synset (``data.*`` files; licence header skipped)."""
    out = []
    for line in text.splitlines():
        if line.startswith(" ") or " | " not in line:
            continue
        head, gloss = line.split(" | ", 1)
        fields = head.split()
        words = [re.sub(r"\(\w+\)$", "", fields[4 + 2 * i]).replace("_", " ") for i in range(int(fields[3], 16))]
        out.append(f"{', '.join(words)}: {gloss.strip()}")
    return out


def fortune_paragraphs(text: str) -> list[str]:
    """The fortunes of a fortune(6) file (separated by ``%`` lines)."""
    return re.split(r"\n%\n", text)


def pod_paragraphs(text: str) -> list[str]:
    """Prose paragraphs of a Perl POD file: commands and verbatim (indented) blocks dropped,
    formatting codes (``B<...>``, ``C<< ... >>``, ``L<text|link>``, ``E<gt>``) replaced by their text."""
    entities = {"lt": "<", "gt": ">", "verbar": "|", "sol": "/"}
    out = []
    for block in re.split(r"\n\s*\n", text):
        if not block.strip() or block.startswith(("=", " ", "\t")):
            continue
        block = re.sub(r"[A-Z]<<+\s(.*?)\s>>+", r"\1", block, flags=re.S)
        previous = None
        while previous != block:
            previous = block
            block = re.sub(r"E<(\w+)>", lambda m: entities.get(m.group(1), ""), block)
            block = re.sub(r"L<([^<>|]*)\|[^<>]*>", r"\1", block)
            block = re.sub(r"[A-Z]<([^<>]*)>", r"\1", block)
        out.append(block)
    return out


EXTRACTORS: dict[str, Callable[[str], list[str]]] = {
    "html": html_paragraphs,
    "text": text_paragraphs,
    "dictd": dictd_paragraphs,
    "wordnet": wordnet_paragraphs,
    "fortune": fortune_paragraphs,
    "pod": pod_paragraphs,
}


def clean(paragraph: str) -> str | None:
    """One line of English prose, or None for text that is too short, mostly non-letters (code,
    tables, ASCII art) or not mostly ASCII (other languages)."""
    text = " ".join(paragraph.translate(PUNCTUATION).split())
    if len(text.split()) < MIN_WORDS:
        return None
    letters = sum(c.isalpha() for c in text)
    if letters < 0.6 * (len(text) - text.count(" ")) or sum(c.isascii() for c in text) < 0.97 * len(text):
        return None
    return text


def dedup_key(paragraph: str) -> str:
    """Digest of a paragraph's lower-cased letters and digits (ignores spacing and punctuation)."""
    return hashlib.sha1(re.sub(r"[\W_]+", "", paragraph.lower()).encode()).hexdigest()


def is_validation(key: str) -> bool:
    """Deterministic split: a paragraph is held out when its dedup key falls in the first ``VALIDATION_PERCENT``."""
    return int(key[:8], 16) % 100 < VALIDATION_PERCENT


def read_text(path: Path) -> str:
    """A text file, gunzipped when it is gzip (``.gz``, dictd's ``.dz``)."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.decode("utf-8", errors="replace")


def fetch(source: Source, out: Path) -> tuple[Path, Path]:
    """Download the package's .deb (``apt-get download``) and unpack it (``dpkg -x``), unless done before."""
    debs, tree = out / "debs", out / "extracted" / source.package
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{source.package}_*.deb"))
    if not found:
        result = subprocess.run(["apt-get", "download", source.package], cwd=debs, capture_output=True, text=True)
        if result.returncode:
            raise SystemExit(
                f"apt-get download {source.package} failed ({result.stderr.strip()}); run apt-get update first"
            )
        found = sorted(debs.glob(f"{source.package}_*.deb"))
    deb = found[-1]
    if not (tree / ".complete").is_file():
        tree.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg", "-x", str(deb), str(tree)], check=True)
        (tree / ".complete").write_text(deb.name)
    return deb, tree


def extract_text(source: Source, tree: Path, target: Path) -> None:
    """Write the package's cleaned paragraphs, one per line, to ``target`` (before cross-package dedup)."""
    pattern = re.compile(source.pattern)
    paragraphs = []
    for path in sorted(p for p in tree.rglob("*") if p.is_file() and not p.is_symlink()):
        relative = path.relative_to(tree).as_posix()
        if not pattern.search(relative) or (source.kind == "html" and EXCLUDED_HTML.search(relative)):
            continue
        for raw in EXTRACTORS[source.kind](read_text(path)):
            text = clean(raw)
            if text is not None:
                paragraphs.append(text)
    atomic_write_text(target, "".join(p + "\n" for p in paragraphs))


def licences(tree: Path, package: str) -> list[str]:
    """Licence names of a package: the DEP-5 ``License:`` fields of its copyright file, else the
    licences its free-form copyright text names."""
    path = tree / "usr/share/doc" / package / "copyright"
    if not path.is_file():
        return ["unknown (no copyright file)"]
    text = path.read_text(errors="replace")
    if re.match(r"Format:", text):  # machine-readable (DEP-5): the short names of the License fields
        return list(dict.fromkeys(m.strip() for m in re.findall(r"^License:[ \t]*(\S[^\n]*)$", text, flags=re.M)))
    known = {
        "GNU Free Documentation License": "GFDL",
        "GNU General Public License": "GPL",
        "Python License": "PSF-2.0",
        "Artistic License": "Artistic",
        "University of California": "BSD",
        "public domain": "public-domain",
        "Creative Commons": "CC",
    }
    named = [name for phrase, name in known.items() if phrase.lower() in text.lower()]
    return named or ["see copyright file"]


def deb_field(deb: Path, field: str) -> str:
    """A control field of a .deb (``dpkg-deb -f``)."""
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), field], check=True, capture_output=True, text=True
    ).stdout.strip()


def tokenise(tokenizer: PreTrainedTokenizerBase, paragraphs: list[str], handle, chunk: int = 4096) -> int:
    """Append the paragraphs' token ids, each followed by EOS, to ``handle`` as uint16; returns the count."""
    eos, total = tokenizer.eos_token_id, 0
    for start in range(0, len(paragraphs), chunk):
        ids = tokenizer(paragraphs[start : start + chunk], add_special_tokens=False)["input_ids"]
        flat = np.fromiter((t for row in ids for t in (*row, eos)), dtype=np.uint16)
        flat.tofile(handle)
        total += len(flat)
    return total


def token_header(counts: dict[str, int], tokenizer: PreTrainedTokenizerBase) -> dict:
    """The ``tokens`` section of ``manifest.json`` that ``softprompt.nano.pretrain`` reads."""
    return {
        "dtype": "uint16",
        "eos_id": tokenizer.eos_token_id,
        "vocab_size": len(tokenizer),
        "tokenizer_sha256": hashlib.sha256((TOKENIZER_DIR / "tokenizer.json").read_bytes()).hexdigest(),
        "files": {split: {"path": f"{split}.bin", "tokens": counts[split]} for split in SPLITS},
    }


def write_token_files(
    out: Path, splits: dict[str, Iterable[list[str]]], tokenizer: PreTrainedTokenizerBase
) -> dict[str, list[int]]:
    """Tokenise ``{split: [paragraphs of package 1, of package 2, ...]}`` into ``<split>.bin`` (atomically:
    a run memory-mapping the old file keeps reading it intact); returns each split's token count per package."""
    counts: dict[str, list[int]] = {split: [] for split in splits}
    for split, groups in splits.items():
        atomic_write(
            out / f"{split}.bin", partial(_write_groups, groups=groups, counts=counts[split], tokenizer=tokenizer)
        )
    return counts


def _write_groups(
    path: str, groups: Iterable[list[str]], counts: list[int], tokenizer: PreTrainedTokenizerBase
) -> None:
    """Tokenise each group into ``path``, appending each group's token count to ``counts``."""
    with open(path, "wb") as handle:
        counts.extend(tokenise(tokenizer, group, handle) for group in groups)


class TokenCorpus:
    """The pre-tokenised splits of a corpus directory (``manifest.json`` + raw uint16 files), memory-mapped."""

    def __init__(self, directory: str | Path) -> None:
        manifest_path = Path(directory) / "manifest.json"
        self.manifest_sha256 = hashlib.sha256(manifest_path.read_bytes()).hexdigest()
        header = json.loads(manifest_path.read_text())["tokens"]
        self.splits = {
            name: np.memmap(Path(directory) / f["path"], dtype=header["dtype"], mode="r", shape=(f["tokens"],))
            for name, f in header["files"].items()
        }


@lru_cache(maxsize=4)
def _epoch_order(n_windows: int, window: int, seed: int, epoch: int) -> tuple[int, np.ndarray]:
    """Random shift and window order of one pass over a split."""
    rng = np.random.default_rng([seed, epoch, window])
    return int(rng.integers(window)), rng.permutation(n_windows)


def window_starts(n_tokens: int, window: int, batch_size: int, index: int, seed: int) -> np.ndarray:
    """Start offsets of batch ``index``'s windows: each pass (epoch) over the split visits every
    ``window``-token block once, in a seeded random order, with a seeded random shift."""
    n_windows = n_tokens // window - 1
    if n_windows < 1:
        raise ValueError(f"a split of {n_tokens} tokens is too short for {window}-token windows")
    out: list[int] = []
    position = index * batch_size
    while len(out) < batch_size:
        epoch, offset = divmod(position, n_windows)
        shift, order = _epoch_order(n_windows, window, seed, epoch)
        take = min(batch_size - len(out), n_windows - offset)
        out.extend((shift + order[offset : offset + take] * window).tolist())
        position += take
    return np.asarray(out)


def build(out: Path, sources: Iterable[Source] = PACKAGES) -> dict:
    """Run every stage for ``sources`` into ``out`` and return the manifest."""
    sources = list(sources)
    (out / "text").mkdir(parents=True, exist_ok=True)
    (out / "licenses").mkdir(exist_ok=True)
    records, seen = [], set()
    splits: dict[str, list[list[str]]] = {split: [] for split in SPLITS}
    for source in sources:
        deb, tree = fetch(source, out)
        text_file = out / "text" / f"{source.package}.txt"
        if not text_file.is_file():
            extract_text(source, tree, text_file)
        copyright_file = tree / "usr/share/doc" / source.package / "copyright"
        if copyright_file.is_file():
            (out / "licenses" / f"{source.package}.copyright").write_bytes(copyright_file.read_bytes())
        kept = {split: [] for split in SPLITS}
        lines = text_file.read_text().splitlines()
        for line in lines:
            key = dedup_key(line)
            if key not in seen:
                seen.add(key)
                kept["validation" if is_validation(key) else "train"].append(line)
        for split in SPLITS:
            splits[split].append(kept[split])
        records.append(
            {
                "package": source.package,
                "version": deb_field(deb, "Version"),
                "deb": deb.name,
                "deb_sha256": hashlib.sha256(deb.read_bytes()).hexdigest(),
                "deb_bytes": deb.stat().st_size,
                "licences": licences(tree, source.package),
                "kind": source.kind,
                "files": source.pattern,
                "paragraphs_extracted": len(lines),
                "paragraphs_kept": sum(len(v) for v in kept.values()),
                "text_bytes": sum(len(p.encode()) + 1 for v in kept.values() for p in v),
            }
        )
        print(
            f"{source.package}: {records[-1]['paragraphs_kept']:,} paragraphs, {records[-1]['text_bytes'] / 1e6:.1f} MB",
            flush=True,
        )
    for split in SPLITS:
        atomic_write_text(out / f"{split}.txt", "".join(p + "\n" for group in splits[split] for p in group))
    tokenizer = load_tokenizer(TOKENIZER_DIR)
    counts = write_token_files(out, splits, tokenizer)
    for i, record in enumerate(records):
        record["tokens"] = {split: counts[split][i] for split in SPLITS}
    manifest = {
        "builder": "python -m softprompt.nano.corpus",
        "validation_percent": VALIDATION_PERCENT,
        "packages": records,
        "tokens": token_header({s: sum(counts[s]) for s in SPLITS}, tokenizer),
        "totals": {
            "text_bytes": sum(r["text_bytes"] for r in records),
            "paragraphs": sum(r["paragraphs_kept"] for r in records),
            **{f"{split}_tokens": sum(counts[split]) for split in SPLITS},
        },
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1))
    return manifest


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m softprompt.nano.corpus --out DIR [--packages a,b]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="corpus directory (outside the repository)")
    parser.add_argument("--packages", help="comma-separated subset of the built-in package list")
    args = parser.parse_args(argv)
    sources = list(PACKAGES)
    if args.packages:
        wanted = args.packages.split(",")
        unknown = sorted(set(wanted) - {s.package for s in PACKAGES})
        if unknown:
            raise SystemExit(
                f"unknown package(s) {', '.join(unknown)}; choose from {', '.join(s.package for s in PACKAGES)}"
            )
        sources = [s for s in PACKAGES if s.package in wanted]
    totals = build(args.out, sources)["totals"]
    print(
        f"{totals['paragraphs']:,} paragraphs, {totals['text_bytes'] / 1e6:.1f} MB, "
        f"{totals['train_tokens']:,} train and {totals['validation_tokens']:,} validation tokens -> {args.out}"
    )


if __name__ == "__main__":
    main()
