"""Ablation: what each retrieval step adds, on the seed questions and CMRC 2018 dev.

    python benchmarks/ablation.py

Rows add one step at a time, from plain jieba words in 300-character passages to the shipped
configuration; every row rebuilds both indexes and runs every question.
"""

from __future__ import annotations

from sweep_quality import REPO, Setting, row, run

from retrieval.search import Synonyms
from retrieval.tokenize import Tokenizer


def main() -> None:
    """Print the ablation table."""
    config = REPO / "config"
    bare, full = Tokenizer(), Tokenizer.from_config(config)
    synonyms = Synonyms.from_file(config / "synonyms.txt")
    steps = [
        (
            "jieba words, 300-char passages, title carried",
            bare,
            Synonyms(),
            Setting(300, bigram_weight=0),
        ),
        ("+ stopwords, user dictionary, synonyms", full, synonyms, Setting(300, bigram_weight=0)),
        ("+ character-bigram field (weight 0.5)", full, synonyms, Setting(300)),
        ("+ 1000-char passages (shipped)", full, synonyms, Setting(1000)),
    ]
    print(
        "| step | max chars | k1 | b | bigram weight | seeds top-1 | seeds top-3 | seeds answer "
        "| cmrc top-1 | cmrc top-3 | cmrc answer |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, tokenizer, syn, setting in steps:
        print(f"| {name} {row(setting, run(setting, tokenizer, syn))}", flush=True)


if __name__ == "__main__":
    main()
