"""Benchmark archives of an exact number of passages, made from the real news corpus.

Up to the size of the real text (≈ 145k passages) an archive is real broadcast-day files, drawn
in a seeded random order; the last file is cut after the item that reaches the target. Beyond
that, every real file is kept and new documents are made by re-packing real sentences: each
synthetic article has a real headline and paragraphs of real sentences drawn from a shuffled
stream (every sentence once per pass over the pool). Whole passages are never repeated: a
synthetic article that would yield a passage whose text already occurs in the archive is
dropped, so idf is not flattened by copies.

Passages are counted with archive-bot's own steps (clean_text → split_articles →
split_passages), the code the index build runs, so the count is exact.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import retrieval.archive
import retrieval.articles
import retrieval.passages
from retrieval.archive import clean_text, ends_sentence, looks_like_headline
from retrieval.articles import split_articles
from retrieval.models import Passage
from retrieval.passages import DEFAULT_MAX_CHARS, article_body, sentence_spans, split_passages

GENERATOR_VERSION = 1
ITEM_SEPARATOR = "\n\n\n"  # two blank lines between news items
ARTICLES_PER_FILE = 20
MAX_POOL_SENTENCE = 150  # longer sentences often stand alone as a passage: they would repeat
MIN_PARAGRAPH = 41  # longer than a headline can be, so no paragraph is read as a title

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ArchiveInfo:
    """What was generated: the manifest stored beside the archive."""

    target: int
    seed: int
    passages: int
    files: int
    real_files: int
    synthetic_files: int
    bytes: int
    chars: int
    seconds: float
    dropped_articles: int
    pool_passes: float
    splitter: str
    generator_version: int = GENERATOR_VERSION


@dataclass(slots=True)
class _Tally:
    """Running counts while files are written."""

    passages: int = 0
    files: int = 0
    real_files: int = 0
    bytes: int = 0
    chars: int = 0
    dropped: int = 0
    seen: set[int] = field(default_factory=set)

    def add(self, path: Path, text: str, passages: list[Passage], *, real: bool) -> None:
        """Write one file and count it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode()
        path.write_bytes(data)
        self.files += 1
        self.real_files += real
        self.bytes += len(data)
        self.chars += len(text)
        self.passages += len(passages)
        self.seen.update(hash(p.text) for p in passages)


@dataclass(frozen=True, slots=True)
class Pool:
    """Real material to re-pack: sentences, headlines, article and paragraph lengths."""

    sentences: list[str]
    titles: list[str]
    article_chars: list[int]
    paragraph_chars: list[int]


def splitter_fingerprint() -> str:
    """Hash of archive-bot's reading, article and passage code: what decides the passages."""
    digest = hashlib.sha256()
    for module in (retrieval.archive, retrieval.articles, retrieval.passages):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()[:16]


def ensure_archive(
    corpus: Path, folder: Path, target: int, seed: int, say: Say, *, fresh: bool = False
) -> ArchiveInfo:
    """The archive of `target` passages in `folder`, generated unless an equal one is there."""
    manifest = folder / "manifest.json"
    info = None if fresh else _reusable(manifest, target, seed)
    if info is not None:
        say(f"archive {folder.name}: reusing {info.passages:,} passages")
        return info
    shutil.rmtree(folder, ignore_errors=True)
    info = generate(corpus, folder, target, seed, say)
    manifest.write_text(json.dumps(asdict(info), indent=2), "utf-8")
    return info


def _reusable(manifest: Path, target: int, seed: int) -> ArchiveInfo | None:
    """The manifest of an archive made with the same settings and splitter, if any."""
    try:
        info = ArchiveInfo(**json.loads(manifest.read_text("utf-8")))
    except (OSError, TypeError, ValueError):
        return None
    wanted = (target, seed, GENERATOR_VERSION, splitter_fingerprint())
    same = (info.target, info.seed, info.generator_version, info.splitter) == wanted
    return info if same else None


def generate(corpus: Path, folder: Path, target: int, seed: int, say: Say) -> ArchiveInfo:
    """Write an archive of `target` passages (real files first, then re-packed ones)."""
    started = time.perf_counter()
    rng = random.Random(seed)
    files = sorted(corpus.rglob("*.txt"))
    rng.shuffle(files)
    tally = _Tally()
    _write_real(files, corpus, folder, target, tally, say)
    passes = 0.0
    if tally.passages < target:
        pool = read_pool(files, say)
        passes = _write_synthetic(pool, folder, target, tally, rng, say)
    seconds = time.perf_counter() - started
    say(
        f"archive {folder.name}: {tally.passages:,} passages, {tally.bytes / 1e6:.1f} MB "
        f"in {tally.files:,} files, {seconds:.0f} s"
    )
    return ArchiveInfo(
        target, seed, tally.passages, tally.files, tally.real_files,
        tally.files - tally.real_files, tally.bytes, tally.chars,
        round(seconds, 1), tally.dropped, round(passes, 2), splitter_fingerprint(),
    )  # fmt: skip


def count(name: str, text: str) -> list[Passage]:
    """The passages archive-bot's build makes of one file (clean → articles → passages)."""
    return [
        passage
        for article in split_articles(clean_text(text))
        for passage in split_passages(article, file=name, max_chars=DEFAULT_MAX_CHARS)
    ]


def _write_real(
    files: list[Path], corpus: Path, folder: Path, target: int, tally: _Tally, say: Say
) -> None:
    """Copy real files until `target` passages; the last one is cut after an item."""
    for i, path in enumerate(files):
        name = path.relative_to(corpus).as_posix()
        text = path.read_text("utf-8")
        passages = count(name, text)
        if tally.passages + len(passages) > target:
            text, passages = _cut_items(name, text, target - tally.passages)
        tally.add(folder / "news" / name, text, passages, real=True)
        if tally.passages >= target:
            return
        if i % 500 == 0:
            say(f"  real files: {i:,}/{len(files):,}, {tally.passages:,} passages")


def _cut_items(name: str, text: str, need: int) -> tuple[str, list[Passage]]:
    """The shortest run of a file's first items that holds at least `need` passages."""
    items = text.split(ITEM_SEPARATOR)
    for end in range(1, len(items) + 1):
        head = ITEM_SEPARATOR.join(items[:end])
        passages = count(name, head)
        if len(passages) >= need:
            return head, passages
    return text, count(name, text)


def read_pool(files: list[Path], say: Say) -> Pool:
    """Sentences, headlines and lengths of every article of the real corpus."""
    pool = Pool([], [], [], [])
    for i, path in enumerate(sorted(files)):
        for article in split_articles(clean_text(path.read_text("utf-8"))):
            body = article_body(article)
            if article.title and looks_like_headline(article.title):
                pool.titles.append(article.title)
            pool.article_chars.append(len(body))
            pool.paragraph_chars.extend(len(p) for p in article.paragraphs)
            pool.sentences.extend(_sentences(body))
        if i % 1000 == 0:
            say(f"  sentence pool: {i:,}/{len(files):,} files")
    say(f"  sentence pool: {len(pool.sentences):,} sentences, {len(pool.titles):,} headlines")
    return pool


def _sentences(body: str) -> Iterator[str]:
    """Whole sentences of an article body that can be re-packed into new paragraphs."""
    for start, end in sentence_spans(body):
        sentence = body[start:end].strip()
        if 2 <= len(sentence) <= MAX_POOL_SENTENCE and ends_sentence(sentence):
            yield sentence


class SentenceStream:
    """Pool sentences in a fresh shuffled order on every pass, each once per pass."""

    def __init__(self, sentences: list[str], rng: random.Random) -> None:
        self._sentences = sentences
        self._rng = rng
        self._order: list[int] = []
        self.drawn = 0

    def next(self) -> str:
        """The next sentence."""
        if not self._order:
            self._order = list(range(len(self._sentences)))
            self._rng.shuffle(self._order)
        self.drawn += 1
        return self._sentences[self._order.pop()]


def synthetic_article(pool: Pool, stream: SentenceStream, rng: random.Random) -> str:
    """A new article: a real headline over real sentences, shaped like a real article."""
    paragraphs: list[str] = []
    current: list[str] = []
    size = length = 0
    article_target, paragraph_target = rng.choice(pool.article_chars), 0
    while size < article_target or current:
        if not current:
            paragraph_target = max(rng.choice(pool.paragraph_chars), MIN_PARAGRAPH)
        sentence = stream.next()
        current.append(sentence)
        size, length = size + len(sentence), length + len(sentence)
        if length >= paragraph_target:
            paragraphs.append("".join(current))
            current, length = [], 0
    return f"{rng.choice(pool.titles)}\n\n" + "\n\n".join(paragraphs)


def _write_synthetic(
    pool: Pool, folder: Path, target: int, tally: _Tally, rng: random.Random, say: Say
) -> float:
    """Add synthetic files until `target` passages; returns passes made over the pool."""
    stream = SentenceStream(pool.sentences, rng)
    number = 0
    while tally.passages < target:
        name = f"synthetic/{number // 1000:03d}/{number:06d}.txt"
        articles = [synthetic_article(pool, stream, rng) for _ in range(ARTICLES_PER_FILE)]
        text, passages = _fit_file(name, articles, target - tally.passages, tally)
        if passages:
            tally.add(folder / name, text, passages, real=False)
        number += 1
        if number % 2000 == 0:
            say(f"  synthetic files: {number:,}, {tally.passages:,}/{target:,} passages")
    return stream.drawn / max(len(pool.sentences), 1)


def _fit_file(
    name: str, articles: list[str], need: int, tally: _Tally
) -> tuple[str, list[Passage]]:
    """A file of the articles that repeat no passage, cut after the one that reaches `need`."""
    text = ITEM_SEPARATOR.join(articles)
    passages = count(name, text)
    per_article = Counter(_article_of(p) for p in passages)
    if len(per_article) != len(articles):  # parsed differently than written: skip the file
        tally.dropped += len(articles)
        return "", []
    repeated = {_article_of(p) for p in passages if hash(p.text) in tally.seen}
    repeated |= _repeated_within(passages)
    kept, total = [], 0
    for i, article in enumerate(articles):
        if i in repeated:
            tally.dropped += 1
            continue
        kept.append(article)
        total += per_article[i]
        if total >= need:
            break
    if len(kept) == len(articles):
        return text, passages
    text = ITEM_SEPARATOR.join(kept)
    return text, count(name, text) if kept else []


def _repeated_within(passages: list[Passage]) -> set[int]:
    """Articles holding a passage text that an earlier passage of the same file has."""
    first: set[int] = set()
    repeated = set()
    for passage in passages:
        key = hash(passage.text)
        if key in first:
            repeated.add(_article_of(passage))
        first.add(key)
    return repeated


def _article_of(passage: Passage) -> int:
    """Article number of a passage id "<file>#<article>.<n>"."""
    return int(passage.passage_id.rpartition("#")[2].partition(".")[0])
