"""Small input rows of the served tasks (with labels, so the library can score them as data)."""

SST2 = [
    {"sentence": s, "label": i % 2}
    for i, s in enumerate(
        [
            "a gripping, beautiful film",
            "dull and far too long",
            "the cast is wonderful",
            "i walked out",
            "an instant classic",
            "not worth the ticket",
            "funny, warm and wise",
            "a mess from start to end",
        ]
    )
]
CB = [
    {"premise": f"the {w} was on the table", "hypothesis": f"there was a {w}", "label": i % 3}
    for i, w in enumerate(["cup", "book", "cat", "lamp", "pen", "key"])
]
COPA = [
    {"premise": "the man fell", "question": "cause", "choice1": "he slipped on ice", "choice2": "he won", "label": 0},
    {"premise": "she was hungry", "question": "effect", "choice1": "she ate lunch", "choice2": "she slept", "label": 0},
    {
        "premise": "it rained",
        "question": "effect",
        "choice1": "the street got wet",
        "choice2": "the sun shone brightly today",
        "label": 0,
    },
]
E2E = [
    {"mr": "name[Aromi], eatType[coffee shop], area[city centre]", "ref": ""},
    {"mr": "name[The Eagle], food[French], priceRange[cheap]", "ref": ""},
]


def unlabeled(rows):
    """The rows as a client sends them: without the label / reference column."""
    return [{k: v for k, v in row.items() if k not in ("label", "ref")} for row in rows]
