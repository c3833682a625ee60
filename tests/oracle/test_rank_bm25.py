"""archive-bot's BM25 scores equal rank-bm25's `BM25Okapi` on the same tokens (to 1e-6)."""

from __future__ import annotations

import random
import threading
import time
from typing import NoReturn

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

import retrieval.index
import retrieval.live
from retrieval.fieldbuild import build_field
from retrieval.index import BM25Params, Field, Postings, scan_order
from retrieval.kernels import Board
from retrieval.live import LiveField
from retrieval.search import Searcher


def _field(corpus: list[list[str]], params: BM25Params | None = None) -> Field:
    params = params or BM25Params()
    return Field(build_field(corpus, params), params)


def _random_corpus(rng: random.Random, n_docs: int, vocab: int) -> list[list[str]]:
    words = [f"w{i}" for i in range(vocab)]
    # Zipf-like draw so that some terms are in more than half the documents (negative idf).
    weights = [1 / (i + 1) for i in range(vocab)]
    return [rng.choices(words, weights, k=rng.randint(0, 40)) for _ in range(n_docs)]


@pytest.mark.parametrize("seed", range(5))
def test_scores_equal_rank_bm25_on_random_corpora(seed: int) -> None:
    rng = random.Random(seed)
    corpus = _random_corpus(rng, n_docs=rng.randint(1, 300), vocab=rng.randint(2, 200))
    oracle, field = BM25Okapi(corpus), _field(corpus)
    for _ in range(30):
        query = rng.choices([f"w{i}" for i in range(250)], k=rng.randint(1, 6))  # repeats, OOV
        np.testing.assert_allclose(field.get_scores(query), oracle.get_scores(query), atol=1e-6)


def _oracle_top(scores: np.ndarray, k: int) -> np.ndarray:
    return np.lexsort((np.arange(len(scores)), -scores))[:k]


def test_a_passage_of_65536_tokens_or_more_is_scored_exactly() -> None:
    """Passage lengths go to the kernels in 2 bytes when every one fits, else in 4: a field
    with a passage of 70,000 tokens ranks and scores as rank-bm25 does, in both kernels and
    `scores_for`, and so do its other passages once it is gone."""
    rng = random.Random(9)
    corpus = _random_corpus(rng, n_docs=200, vocab=60)
    corpus[57] = [f"f{i % 1000}" for i in range(70_000)] + ["w1", "w2", "long", "w1"]
    wide = _field(corpus)
    narrow = _field(corpus[:57] + corpus[58:])
    assert wide.scoring[0].dtype == np.uint32 and narrow.scoring[0].dtype == np.uint16
    for field, texts in ((wide, corpus), (narrow, corpus[:57] + corpus[58:])):
        oracle = BM25Okapi(texts)
        for query in (["w1", "long"], ["w2", "w3", "f7"], ["long"]):
            expected = oracle.get_scores(query)
            postings = field.gather(query)
            ids, scores = field.top(postings, 10)
            top = [i for i in _oracle_top(expected, 10) if any(t in texts[i] for t in query)]
            assert list(ids) == top
            np.testing.assert_allclose(scores, expected[top], atol=1e-6)
            everyone = np.arange(len(texts))
            np.testing.assert_allclose(field.scores_for(postings, everyone), expected, atol=1e-6)


@pytest.mark.parametrize("seed", range(8))
def test_pruned_top_k_equals_rank_bm25(seed: int) -> None:
    """MaxScore pruning never changes the top k: ids (ties by lower id) and scores."""
    rng = random.Random(100 + seed)
    corpus = _random_corpus(rng, n_docs=rng.randint(50, 600), vocab=rng.randint(20, 400))
    oracle, field = BM25Okapi(corpus), _field(corpus)
    for _ in range(40):
        query = rng.choices([f"w{i}" for i in range(420)], k=rng.randint(1, 8))
        k = rng.choice([1, 3, 10, 50])
        expected = oracle.get_scores(query)
        postings = field.gather(query)
        ids, scores = field.top(postings, k)
        positive = _oracle_top(expected, k)
        touched = [i for i in positive if any(t in corpus[i] for t in query)]
        assert list(ids) == touched
        np.testing.assert_allclose(scores, expected[touched], atol=1e-6)
        np.testing.assert_allclose(field.scores_for(postings, ids), scores, atol=1e-9)


def test_negative_idf_uses_epsilon_times_mean_idf() -> None:
    corpus = [["common", "a"], ["common", "b"], ["common"], ["rare"]]
    oracle, field = BM25Okapi(corpus), _field(corpus)
    assert oracle.idf["common"] > 0  # replaced by epsilon × mean, as rank-bm25 does
    np.testing.assert_allclose(field.get_scores(["common"]), oracle.get_scores(["common"]))


def test_other_parameters_match_too() -> None:
    corpus = _random_corpus(random.Random(7), 120, 50)
    params = BM25Params(k1=0.9, b=0.4, epsilon=0.1)
    oracle = BM25Okapi(corpus, k1=0.9, b=0.4, epsilon=0.1)
    query = ["w1", "w3", "w3", "w40"]
    np.testing.assert_allclose(_field(corpus, params).get_scores(query), oracle.get_scores(query))


def test_seed_index_words_field_equals_rank_bm25(seed_searcher: Searcher) -> None:
    index, tokenizer = seed_searcher.index, seed_searcher.tokenizer
    from retrieval.build import index_text

    corpus = [
        tokenizer.tokens(index_text(index.passages[i])).words for i in range(len(index.passages))
    ]
    oracle = BM25Okapi(corpus)
    for question in ("溧阳暑托班有多少家", "古雷开发区反诈宣传", "常州 工人文化宫 1957年"):
        query = tokenizer.tokens(question).words
        expected = oracle.get_scores(query)
        field = index.fields["words"]
        np.testing.assert_allclose(field.get_scores(query), expected, atol=1e-6)
        ids, scores = field.top(field.gather(query), 10)
        expected_top = np.lexsort((np.arange(len(expected)), -expected))[: len(ids)]
        assert list(ids) == list(expected_top)
        np.testing.assert_allclose(scores, expected[expected_top], atol=1e-6)


def test_maxscore_scans_the_terms_with_most_postings_for_their_weight_last() -> None:
    # "common" is in 80 of 100 passages: rank-bm25 floors its idf at epsilon times the mean
    # idf, above the idf of "rare" (30 passages), yet it has more postings for its weight.
    corpus = [
        [f"own{i}"]
        + (["common"] if i % 5 else [])
        + (["rare"] if i % 10 < 3 else [])
        + (["rarest"] if i in (7, 50) else [])
        for i in range(100)
    ]
    oracle, field = BM25Okapi(corpus), _field(corpus)
    assert oracle.idf["common"] > oracle.idf["rare"]
    for query in (["common", "rare", "rarest"], ["rare", "common"], ["common", "rarest", "rare"]):
        postings = field.gather(query)
        assert field.words is not None
        order = [field.words[int(t)] for t in postings.terms]
        assert order == [w for w in ("rarest", "rare", "common") if w in query]
        assert postings.upper[order.index("common")] > postings.upper[order.index("rare")]
        ids, scores = field.top(postings, 5)
        expected = oracle.get_scores(query)
        assert list(ids) == _oracle_top(expected, 5).tolist()
        np.testing.assert_allclose(scores, expected[ids], atol=1e-6)
    live, _ = _live_halves(corpus)  # a field of segments orders a query's terms alike
    postings = live.gather(["common", "rare", "rarest"])
    assert (postings.ends - postings.starts).tolist() == [2, 30, 80]


def test_scan_order_puts_fewest_postings_for_the_weight_first() -> None:
    lengths = np.array([80, 30, 2, 30, 5, 9])
    upper = np.array([1.0, 0.8, 3.0, 1.6, 0.0, 3.0])
    # costs 80, 37.5, 0.67, 18.75, (no weight: last), 3; equal costs: the stronger first
    assert scan_order(lengths, upper).tolist() == [2, 5, 3, 1, 0, 4]
    assert scan_order(np.array([4, 2]), np.array([2.0, 1.0])).tolist() == [0, 1]
    assert scan_order(np.zeros(0, dtype=np.int64), np.zeros(0)).tolist() == []


def _corpus_with_repeats(rng: random.Random, n_docs: int, vocab: int) -> list[list[str]]:
    """A Zipf-like corpus in which a fifth of the passages repeat earlier ones (exact ties)."""
    corpus = _random_corpus(rng, n_docs, vocab)
    for i in range(1, n_docs):
        if rng.random() < 0.2:
            corpus[i] = list(corpus[rng.randrange(i)])
    return corpus


@pytest.mark.parametrize("seed", range(6))
def test_block_max_top_k_equals_rank_bm25_and_plain_max_score(seed: int) -> None:
    """Block-max pruning (postings long enough for many blocks) keeps the exact top k: the
    same ids and bits as plain MaxScore, rank-bm25's scores; k above the candidates, ties by
    lower id, and terms in more than half the passages (negative idf, epsilon rule)."""
    from retrieval import kernels

    rng = random.Random(500 + seed)
    corpus = _corpus_with_repeats(rng, n_docs=rng.randint(1500, 4000), vocab=rng.randint(30, 600))
    oracle, field = BM25Okapi(corpus), _field(corpus)
    assert int(field.block_offsets[-1]) > len(field.keys)  # terms with several blocks
    for _ in range(40):
        query = rng.choices([f"w{i}" for i in range(650)], k=rng.randint(1, 10))
        k = rng.choice([1, 2, 10, 100, 10_000])
        postings = field.gather(query)
        ids, scores = field.top(postings, k)
        expected = oracle.get_scores(query)
        touched = [
            i for i in _oracle_top(expected, len(corpus)) if any(t in corpus[i] for t in query)
        ]
        assert list(ids) == touched[:k]
        np.testing.assert_allclose(scores, expected[touched[:k]], atol=1e-6)
        if not len(postings):
            continue
        terms = postings.terms
        upper = field.upper[terms]
        if np.any(field.idf[terms] < 0):
            upper = np.full(len(terms), np.inf)
        scratch = (
            np.zeros(field.size),
            np.zeros(field.size, np.uint32),
            np.empty(field.size, np.uint32),
        )
        plain = kernels.top_k(
            postings.docs, postings.tfs, postings.starts, postings.ends, field.idf[terms], upper,
            field.scoring, k, *scratch,
        )  # fmt: skip
        assert ids.tolist() == plain[0].tolist() and scores.tolist() == plain[1].tolist()


@pytest.mark.parametrize("seed", range(4))
def test_top_of_a_range_of_passages_is_the_top_there(seed: int) -> None:
    """The top k of passages first..end - 1 (ranges that start and end inside blocks, empty,
    or all) is rank-bm25's top k among them, with block-max and plain MaxScore alike; and
    the best of two halves' tops is the whole top, ids and score bits."""
    from retrieval import kernels

    rng = random.Random(900 + seed)
    corpus = _corpus_with_repeats(rng, n_docs=rng.randint(1500, 3000), vocab=rng.randint(30, 400))
    oracle, field = BM25Okapi(corpus), _field(corpus)
    n = len(corpus)
    for _ in range(30):
        query = rng.choices([f"w{i}" for i in range(450)], k=rng.randint(1, 8))
        k = rng.choice([1, 10, 100])
        postings = field.gather(query)
        if not len(postings) or np.any(postings.idf < 0):
            continue
        expected = oracle.get_scores(query)
        first = rng.randrange(n + 1)
        end = rng.choice([first, n, rng.randrange(first, n + 1)])
        ids, scores = field.top(postings, k, (first, end))
        inside = [
            i
            for i in _oracle_top(expected, n)
            if first <= i < end and any(t in corpus[i] for t in query)
        ]
        assert list(ids) == inside[:k]
        np.testing.assert_allclose(scores, expected[inside[:k]], atol=1e-6)
        scratch = np.zeros(n), np.zeros(n, np.uint32), np.empty(n, np.uint32)
        plain = kernels.top_k(
            postings.docs, postings.tfs, postings.starts, postings.ends, postings.idf,
            postings.upper, field.scoring, k, *scratch, (first, end),
        )  # fmt: skip
        assert ids.tolist() == plain[0].tolist() and scores.tolist() == plain[1].tolist()
        whole = field.top(postings, k)
        lower, upper = field.top(postings, k, (0, first)), field.top(postings, k, (first, n))
        both_ids = np.concatenate([lower[0], upper[0]])
        both_scores = np.concatenate([lower[1], upper[1]])
        order = np.lexsort((both_ids, -both_scores))[:k]
        assert both_ids[order].tolist() == whole[0].tolist()
        assert both_scores[order].tobytes() == whole[1].tobytes()


@pytest.mark.parametrize("seed", range(4))
def test_halves_sharing_a_board_merge_to_the_whole_top(seed: int) -> None:
    """Two calls ranking the halves of the passages on one board, at once in two threads or
    one after the other (the second then cuts with the first's final k best), each cut by the
    k-th best of both: merged, their tops are the whole top, ids and score bits, with
    repeated passages tying at the cut, block-max and plain MaxScore alike."""
    from retrieval import kernels

    rng = random.Random(1300 + seed)
    corpus = _corpus_with_repeats(rng, n_docs=rng.randint(1500, 3000), vocab=rng.randint(30, 300))
    field = _field(corpus)
    n, half = len(corpus), len(corpus) // 2

    def merged(tops: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[list[int], bytes]:
        ids = np.concatenate([top[0] for top in tops])
        scores = np.concatenate([top[1] for top in tops])
        order = np.lexsort((ids, -scores))[:k]
        return ids[order].tolist(), scores[order].tobytes()

    def plain(postings: Postings, k: int, part: tuple[int, int], board: kernels.Board):
        scratch = np.zeros(n), np.zeros(n, np.uint32), np.empty(n, np.uint32)
        return kernels.top_k(
            postings.docs, postings.tfs, postings.starts, postings.ends, postings.idf,
            postings.upper, field.scoring, k, *scratch, part, board,
        )  # fmt: skip

    for _ in range(25):
        query = rng.choices([f"w{i}" for i in range(350)], k=rng.randint(1, 10))
        postings = field.gather(query)
        if not len(postings) or np.any(postings.idf < 0):
            continue
        for k in (1, 10, 100):
            whole = field.top(postings, k)
            expected = (whole[0].tolist(), whole[1].tobytes())
            for rank in (field.top, plain):
                board = kernels.new_board(k)
                tops = [rank(postings, k, (0, half), (board, 0))]
                tops.append(rank(postings, k, (half, n), (board, 1)))
                assert merged(tops, k) == expected
                board = kernels.new_board(k)
                found: dict[int, tuple[np.ndarray, np.ndarray]] = {}

                def run(i: int, part: tuple[int, int]) -> None:
                    found[i] = rank(postings, k, part, (board, i))  # noqa: B023

                threads = [
                    threading.Thread(target=run, args=(0, (0, half))),
                    threading.Thread(target=run, args=(1, (half, n))),
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                assert merged([found[0], found[1]], k) == expected


def test_block_bounds_hold_every_weight() -> None:
    """A block's bound, worked out from raw counts at query time, is at least each weight in it."""
    from retrieval.kernels import _block_bound

    corpus = _corpus_with_repeats(random.Random(9), 3000, 80)
    field = _field(corpus)
    k1, b = field.params.k1, field.params.b
    for t in range(len(field.keys)):
        _, weights = field.postings(t)
        first = int(field.block_offsets[t])
        for j in range(int(field.block_offsets[t + 1]) - first):
            block = weights[j * retrieval.index.BLOCK : (j + 1) * retrieval.index.BLOCK]
            max_tf, min_len = field.block_max_tf[first + j], field.block_min_len[first + j]
            bound = _block_bound(field.idf[t], max_tf, min_len, k1, b, field.avgdl)
            if field.idf[t] > 0:
                assert block.max() <= bound


@pytest.mark.parametrize("seed", range(3))
def test_top_leaves_its_reused_scratch_clear(seed: int) -> None:
    """The kernels reuse one set of passage-sized arrays per thread: after every query, pruned
    or not, no passage holds a slot among the candidates (the candidates' scores are written
    before they are read, and may be left as they are), so the next query's top k is the
    dense ranking's again (same bits; rank-bm25's scores to 1e-6, whose last bits can order
    near-ties among repeated passages differently)."""
    rng = random.Random(700 + seed)
    corpus = _corpus_with_repeats(rng, n_docs=rng.randint(800, 2500), vocab=rng.randint(20, 300))
    oracle, field = BM25Okapi(corpus), _field(corpus)
    for _ in range(30):
        query = rng.choices([f"w{i}" for i in range(320)], k=rng.randint(1, 10))
        k = rng.choice([1, 10, 100])
        ids, scores = field.top(field.gather(query), k)
        accumulator, slots, _ = retrieval.index.scratch_arrays(field.size)
        assert not slots.any()
        accumulator[:] = rng.random()  # stale scores never count
        dense = field.get_scores(query)
        touched = [
            i for i in _oracle_top(dense, len(corpus)) if any(t in corpus[i] for t in query)
        ]
        assert list(ids) == touched[:k] and scores.tolist() == dense[touched[:k]].tolist()
        np.testing.assert_allclose(scores, oracle.get_scores(query)[touched[:k]], atol=1e-6)


def _live_halves(corpus: list[list[str]]) -> tuple[LiveField, Field]:
    """A field of two segments (the corpus's halves, nothing deleted) and the whole one."""
    params, half = BM25Params(), len(corpus) // 2
    parts = [build_field(corpus[:half], params), build_field(corpus[half:], params)]
    return LiveField(parts, [None, None], params), _field(corpus)


def test_a_saved_or_built_field_reads_postings_in_place() -> None:
    """A field's `Postings` are its own arrays and each term's place in them: nothing copied."""
    field = _field(_random_corpus(random.Random(10), n_docs=500, vocab=40))
    postings = field.gather(["w3", "w1", "w3", "nowhere"])
    assert postings.docs is field.docs and postings.tfs is field.tfs and len(postings) == 3
    for i, term in enumerate(postings.terms.tolist()):
        assert postings.of(i)[0].tolist() == field.postings(term)[0].tolist()


def test_live_gather_reuses_one_buffer_per_thread_and_reads_each_query_whole() -> None:
    """A field of segments copies a query's postings into its buffers for the thread (no
    fresh arrays per query), and a smaller query after a larger one holds exactly its own."""
    field, whole = _live_halves(_random_corpus(random.Random(11), n_docs=2000, vocab=60))

    def assert_read_whole(postings: Postings, words: list[str]) -> None:
        got = sorted(postings.of(i)[0].tolist() for i in range(len(postings)))
        assert got == sorted(whole.postings(t)[0].tolist() for t in whole.term_ids(words))

    large = field.gather([f"w{i}" for i in range(10)])
    size = len(large.docs)
    small = field.gather(["w30", "w7"])
    assert np.shares_memory(large.docs, small.docs) and len(small.docs) < size
    assert_read_whole(small, ["w30", "w7"])
    elsewhere: list[Postings] = []
    worker = threading.Thread(target=lambda: elsewhere.append(field.gather(["w1", "w2"])))
    worker.start()
    worker.join()
    assert not np.shares_memory(elsewhere[0].docs, small.docs)
    assert_read_whole(elsewhere[0], ["w1", "w2"])
    assert_read_whole(small, ["w30", "w7"])  # the other thread's read left this one's alone


def test_a_query_larger_than_the_kept_buffers_gets_arrays_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A thread keeps postings buffers only up to `KEPT_POSTINGS`: a rarer, larger query reads
    into arrays of its own (freed after it), whole, and leaves the kept buffer as it was."""
    field, whole = _live_halves(_random_corpus(random.Random(12), n_docs=2000, vocab=60))
    small = field.gather(["w3"])
    kept = len(small.docs)
    monkeypatch.setattr(retrieval.live, "KEPT_POSTINGS", 2 * kept)
    words = [f"w{i}" for i in range(30)]
    large = field.gather(words)
    assert len(large.docs) > 2 * kept and not np.shares_memory(large.docs, small.docs)
    got = sorted(large.of(i)[0].tolist() for i in range(len(large)))
    assert got == sorted(whole.postings(t)[0].tolist() for t in whole.term_ids(words))
    docs, _ = field._scratch.postings
    assert len(docs) <= 2 * kept
    assert np.shares_memory(field.gather(["w3"]).docs, docs)


def test_fields_of_a_thread_share_one_scratch() -> None:
    """Fields are scored one at a time in a thread, so they share its passage-sized scratch
    (grown to the largest field, sliced for a smaller one); another thread has its own."""
    small = _field(_random_corpus(random.Random(13), n_docs=500, vocab=40))
    large = _field(_random_corpus(random.Random(14), n_docs=2000, vocab=60))
    for field in (small, large, small):
        field.top(field.gather(["w1", "w2", "w3"]), 10)
    mine = retrieval.index.scratch_arrays(small.size)
    assert len(mine[0]) == small.size and mine[2].dtype == np.uint32
    assert np.shares_memory(mine[0], retrieval.index.scratch_arrays(large.size)[0])
    elsewhere: list[tuple[np.ndarray, ...]] = []
    worker = threading.Thread(
        target=lambda: elsewhere.append(retrieval.index.scratch_arrays(large.size))
    )
    worker.start()
    worker.join()
    assert not np.shares_memory(elsewhere[0][0], mine[0])


def test_a_large_index_is_ranked_on_both_cores_as_on_one(
    seed_searcher: Searcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a large index a question's passages are split between the searching thread and a
    helper thread of its own: four threads searching at once, each through its own helper,
    rank and score as one thread ranking every field whole does, bit for bit. A small index
    (the seeds, unless the bar is lowered) starts no helper."""
    import retrieval.search

    questions = ["溧阳暑托班有多少家", "古雷开发区反诈宣传", "常州 工人文化宫 1957年", "工会"]

    def ranked() -> list[list[tuple[str, float]]]:
        return [
            [(hit.passage.passage_id, hit.score) for hit in seed_searcher.search(q, top_k=10)]
            for q in questions
        ]

    found: list[object] = []
    whole: list[list[list[tuple[str, float]]]] = []

    def on_one_core() -> None:
        whole.append(ranked())
        found.append(getattr(retrieval.search._HELPER, "pool", None))

    thread = threading.Thread(target=on_one_core)
    thread.start()
    thread.join()
    assert seed_searcher.index.fields["words"].size < retrieval.search.SPLIT_FROM
    assert found == [None]
    monkeypatch.setattr(retrieval.search, "SPLIT_FROM", 0)
    results: dict[int, list[list[tuple[str, float]]]] = {}
    helpers: dict[int, object] = {}

    def work(n: int) -> None:
        results[n] = ranked()
        helpers[n] = retrieval.search._HELPER.pool

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(pool) for pool in helpers.values()}) == 4
    assert ranked() == whole[0]
    assert all(results[n] == whole[0] for n in range(4))


@pytest.mark.parametrize(
    ("failing", "where"),
    [("words", "gather"), ("bigrams", "gather"), ("bigrams", "upper"), ("words", "lower")],
)
def test_a_read_failing_in_either_thread_fails_that_question_only(
    seed_searcher: Searcher, monkeypatch: pytest.MonkeyPatch, failing: str, where: str
) -> None:
    """A field's postings that cannot be read (a damaged file: OSError) while the searching
    thread gathers them or ranks the lower half of the passages, or while its helper ranks the
    upper half, fail that question with the error, and the next question is ranked as before:
    no thread is left waiting or working on the failed question's buffers (the helper reads
    the searching thread's postings, so the error waits for its ranking to end)."""
    import retrieval.search

    monkeypatch.setattr(retrieval.search, "SPLIT_FROM", 0)
    question = "溧阳暑托班有多少家"
    before = [(hit.passage.passage_id, hit.score) for hit in seed_searcher.search(question)]
    field = seed_searcher.index.fields[failing]
    ranked_in: list[str] = []
    helper_done = threading.Event()
    top = field.top

    def damaged(*args: object, **kwargs: object) -> NoReturn:
        raise OSError("index file ended early: read 0 of 4 bytes")

    def damaged_half(
        postings: Postings, k: int, passages: tuple[int, int], board: Board
    ) -> tuple[np.ndarray, np.ndarray]:
        upper = passages[0] > 0
        ranked_in.append(threading.current_thread().name)
        if upper == (where == "upper"):
            damaged()
        if upper:  # still ranking when the searching thread's half fails
            time.sleep(0.2)
            helper_done.set()
        return top(postings, k, passages, board)

    monkeypatch.setattr(field, "gather" if where == "gather" else "top", damaged)
    if where != "gather":
        monkeypatch.setattr(field, "top", damaged_half)
    with pytest.raises(OSError, match="ended early"):
        seed_searcher.search(question)
    if where != "gather":  # the upper half on the helper, the lower one here
        assert sorted(name.startswith("field") for name in ranked_in) == [False, True]
    if where == "lower":
        assert helper_done.is_set()
    monkeypatch.undo()
    monkeypatch.setattr(retrieval.search, "SPLIT_FROM", 0)
    after = [(hit.passage.passage_id, hit.score) for hit in seed_searcher.search(question)]
    assert after == before and before
