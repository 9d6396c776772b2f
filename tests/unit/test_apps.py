"""Built-in apps: fast paths equal the per-line definitions; loading errors name the field."""

import random
from collections import Counter
from pathlib import Path

import pytest
from kubemr import apps
from kubemr.apps.wordcount import WordCount, count_block, words
from kubemr.spec import AppSpec


def test_words_are_maximal_isalpha_runs() -> None:
    assert words("Hello, world! it's 42nd_x café ½ Ⅻ") == [
        "Hello",
        "world",
        "it",
        "s",
        "nd",
        "x",
        "café",
    ]


@pytest.mark.parametrize("seed", range(4))
def test_count_block_equals_per_line_definition(seed: int) -> None:
    rng = random.Random(seed)
    pieces = [
        "the",
        "The",
        " ",
        "\n",
        "\r\n",
        ",",
        "é",
        "“quoted”",
        "ß",
        "42",
        "_",
        "Ⅻ",
        "½",
        "日本",
        "\t",
        "x²",
    ]
    text = "".join(rng.choice(pieces) for _ in range(3000))
    block = text.encode() + b"\xff\xc3(bad bytes)\n"
    expected = Counter(
        w for line in block.decode("utf-8", "surrogateescape").split("\n") for w in words(line)
    )
    assert count_block(block) == expected


def test_wordcount_split_fast_path_without_combiner() -> None:
    pairs = list(WordCount().map_split("p", [b"a b a\n", b"b\n"], combine=False))
    assert sorted(pairs) == [("a", 1), ("a", 1), ("b", 1), ("b", 1)]


def test_load_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(apps.AppError, match=r"spec\.app\.module: cannot import .nope_mod."):
        apps.load_app(AppSpec(module="nope_mod:App"))
    with pytest.raises(apps.AppError, match="no such file"):
        apps.load_app(AppSpec(module="missing/app.py:App"))
    with pytest.raises(apps.AppError, match=r"spec\.app\.args"):
        apps.load_app(AppSpec(builtin="wordcount", args={"unexpected": "1"}))
    with pytest.raises(apps.AppError, match="not a regex"):
        apps.load_app(AppSpec(builtin="grep", args={"pattern": "("}))
    module = tmp_path / "half.py"
    module.write_text("class App:\n    def map(self, k, v):\n        return []\n")
    with pytest.raises(apps.AppError, match="has no reduce"):
        apps.load_app(AppSpec(module=f"{module}:App"))
