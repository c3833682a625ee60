"""The C kernels' checks of their arrays, and their results from several threads at once
(their scores against rank-bm25 are tests/oracle's)."""

from __future__ import annotations

import mmap
import random
import threading
from pathlib import Path

import numpy as np
import pytest

from retrieval import _kernels, kernels
from retrieval.fieldbuild import build_field
from retrieval.index import BM25Params, Field


def _field(n_docs: int = 400, seed: int = 3) -> Field:
    rng = random.Random(seed)
    corpus = [
        [f"w{min(int(rng.paretovariate(1.0)), 80)}" for _ in range(rng.randint(1, 20))]
        for _ in range(n_docs)
    ]
    return Field(build_field(corpus, BM25Params()), BM25Params())


def _arguments(field: Field, words: list[str]) -> dict[str, object]:
    postings = field.gather(words)
    size = field.size
    return {
        "docs": postings.docs.copy(),
        "tfs": postings.tfs.copy(),
        "starts": postings.starts,
        "ends": postings.ends,
        "idfs": postings.idf,
        "upper": postings.upper,
        "scoring": field.scoring,
        "k1": field.params.k1,
        "k": 10,
        "scores": np.zeros(size),
        "slots": np.zeros(size, dtype=np.uint32),
        "cand": np.empty(size, dtype=np.uint32),
    }


def _ratios(norms: np.ndarray, k1: float) -> np.ndarray:
    """A ratio table: tf (k1 + 1) / (tf + norm) for tf 0–255 (rows) and each norm."""
    tf = np.arange(256.0)[:, np.newaxis]
    return (tf * (k1 + 1) / (tf + norms)).reshape(-1)


@pytest.mark.parametrize("params", [BM25Params(), BM25Params(k1=1.2, b=0.3), BM25Params(b=0.0)])
def test_ratio_table_holds_the_per_posting_weights(params: BM25Params) -> None:
    """The kernels look a posting's tf (k1 + 1) / (tf + norm) up by frequency and passage
    length: the same bits as worked out from the field's norms, for any k1 and b."""
    rng = random.Random(4)
    corpus = [[f"w{rng.randint(0, 50)}" for _ in range(rng.randint(0, 90))] for _ in range(700)]
    field = Field(build_field(corpus, params), params)
    lengths, ratios = field.scoring
    assert lengths.dtype == np.uint16 and lengths.tolist() == [len(p) for p in corpus]
    table = ratios.reshape(256, -1)
    assert table.shape[1] == max(len(passage) for passage in corpus) + 1
    expected = _ratios(field.norm, params.k1).reshape(256, -1)
    assert table[:, lengths].tobytes() == expected.tobytes()


def test_top_k_ranks_by_score_then_id() -> None:
    """A hand-checked case: two terms, ties broken by the lower passage id."""
    docs = np.array([0, 2, 3, 2], dtype=np.uint32)  # term 0: passages 0, 2, 3; term 1: 2
    tfs = np.array([1, 1, 1, 1], dtype=np.uint8)
    starts, ends = np.array([0, 3], dtype=np.int64), np.array([3, 4], dtype=np.int64)
    idfs, upper = np.array([1.0, 0.5]), np.array([1.0, 0.5])
    scoring = np.zeros(4, dtype=np.uint32), _ratios(np.ones(1), k1=1.0)  # every norm 1
    scratch = np.zeros(4), np.zeros(4, dtype=np.uint32), np.empty(4, dtype=np.uint32)
    ids, scores = kernels.top_k(docs, tfs, starts, ends, idfs, upper, scoring, 3, *scratch)
    weight = 1.0 * (1.0 * 2.0 / (1.0 + 1.0))
    assert ids.tolist() == [2, 0, 3]
    assert scores.tolist() == [weight + 0.5 * weight, weight, weight]
    assert not scratch[1].any()  # every slot cleared again: the next call's scratch


@pytest.mark.parametrize(
    ("name", "bad", "says"),
    [
        ("docs", np.zeros(3, dtype=np.int32), "docs must be one-dimensional"),
        ("tfs", np.zeros(3, dtype=np.uint16), "tfs must be one-dimensional"),
        ("lengths", np.zeros(10, dtype=np.int64), "lengths must be one-dimensional"),
        ("lengths", np.zeros(10, dtype=np.int16), "lengths must be one-dimensional"),
        ("ratios", np.ones(256, dtype=np.float32), "ratios must be one-dimensional"),
        ("ratios", np.ones(300), "ratios must hold a row of lengths for each of 256"),
        ("slots", np.zeros(10, dtype=bool), "slots must be one-dimensional"),
        ("slots", np.zeros(10, dtype=np.int64), "slots must be one-dimensional"),
        ("cand", np.empty(10, dtype=np.int64), "cand must be one-dimensional"),
        ("scores", np.zeros((2, 5)), "scores must be one-dimensional"),
        ("scores", np.zeros(20)[::2], "scores must be a writable C-contiguous array"),
        ("cand", np.empty(9, dtype=np.uint32), "scores, slots and cand must have the length of"),
        ("ends", np.array([2, 99], dtype=np.int64), "each term's postings .* within docs"),
        ("ends", np.array([2, 1], dtype=np.int64), "each term's postings .* within docs"),
        ("starts", np.array([-1, 2], dtype=np.int64), "each term's postings .* within docs"),
        ("starts", np.array([0], dtype=np.int64), "starts, ends and idfs must hold one entry"),
        ("ends", np.array([2, 3, 3], dtype=np.int64), "starts, ends and idfs must hold one"),
        ("starts", np.array([0, 2], dtype=np.int32), "starts must be one-dimensional"),
        ("upper", np.ones(3), "upper must hold one entry per term"),
        ("k", 0, "k must be at least 1"),
        ("first", -1, "the passages must run from a first"),
        ("end", -1, "the passages must run from a first"),
        ("board", np.zeros(3, dtype=np.uint64), "board must hold 2 \\(k \\+ 1\\) entries"),
        ("board", np.zeros(12, dtype=np.int64), "board must be one-dimensional"),
        ("half", 2, "half must be 0 or 1"),
    ],
)
def test_top_k_refuses_mismatched_arrays(name: str, bad: object, says: str) -> None:
    """A wrong item type, shape, stride or length is a ValueError, not a crash."""
    good = {  # in the order `_kernels.top_k` takes them
        "docs": np.array([0, 4, 7], dtype=np.uint32),
        "tfs": np.ones(3, dtype=np.uint8),
        "starts": np.array([0, 2], dtype=np.int64),
        "ends": np.array([2, 3], dtype=np.int64),
        "idfs": np.ones(2),
        "upper": np.ones(2),
        "lengths": np.zeros(10, dtype=np.uint32),
        "ratios": np.ones(256),
        "k": 5,
        "scores": np.zeros(10),
        "slots": np.zeros(10, dtype=np.uint32),
        "cand": np.empty(10, dtype=np.uint32),
        "out_docs": np.empty(5, dtype=np.int64),
        "out_scores": np.empty(5),
        "first": 0,
        "end": 10,
        "board": np.zeros(12, dtype=np.uint64),  # 2 (k + 1)
        "half": 0,
    }
    good[name] = bad
    with pytest.raises(ValueError, match=says):
        _kernels.top_k(*good.values())  # type: ignore[arg-type]


def test_read_only_scratch_is_refused() -> None:
    scores = np.zeros(10)
    scores.flags.writeable = False
    docs, tfs = np.array([1], dtype=np.uint32), np.ones(1, dtype=np.uint8)
    starts, ends, one = np.array([0], dtype=np.int64), np.array([1], dtype=np.int64), np.ones(1)
    scoring = np.zeros(10, dtype=np.uint32), np.ones(256)
    with pytest.raises(ValueError, match="scores must be a writable"):
        kernels.top_k(
            docs, tfs, starts, ends, one, one, scoring, 1, scores, np.zeros(10, np.uint32),
            np.empty(10, np.uint32),
        )  # fmt: skip


def test_blocks_and_targets_are_checked() -> None:
    field = _field()
    args = _arguments(field, ["w1", "w2"])
    postings = field.gather(["w1", "w2"])
    first, max_tf, min_len = field.blocks(postings.terms)
    unequal = (first, max_tf, min_len[:1], 128, 0.75, field.avgdl, True)
    with pytest.raises(ValueError, match="max_tf and min_len"):
        kernels.top_k_blocks(**args, blocks=unequal)  # type: ignore[arg-type]
    too_short = (first, max_tf[:1], min_len[:1], 128, 0.75, field.avgdl, True)
    with pytest.raises(ValueError, match="each term's blocks"):
        kernels.top_k_blocks(**args, blocks=too_short)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="targets must be passage ids"):
        kernels.scores_of(
            postings.docs, postings.tfs, postings.starts, postings.ends, postings.idf,
            field.scoring,
            np.array([field.size], dtype=np.uint32),
        )  # fmt: skip
    with pytest.raises(ValueError, match="out must have the length of targets"):
        _kernels.scores_of(
            postings.docs, postings.tfs, postings.starts, postings.ends, postings.idf,
            *field.scoring,
            np.array([0, 1], dtype=np.uint32), np.zeros(1),
        )  # fmt: skip


def test_postings_in_place_rank_as_copied_ones() -> None:
    """The kernels read each term's postings where they lie (`starts`, `ends` into the field's
    arrays: out of order, a term asked twice, an empty one) and rank and score them as the
    same postings copied one after the other, bit for bit, over all passages and by halves."""
    field = _field(n_docs=3000, seed=11)
    rng = random.Random(12)
    for _ in range(40):
        words = [f"w{rng.randint(1, 80)}" for _ in range(rng.randint(1, 6))]
        words += [*rng.sample(words, 1), "nowhere"]
        postings = field.gather(words)
        assert postings.docs is field.docs  # in place: the field's own array
        starts, ends = postings.starts, postings.ends
        copied = np.concatenate([postings.docs[a:b] for a, b in zip(starts, ends, strict=True)])
        tfs = np.concatenate([postings.tfs[a:b] for a, b in zip(starts, ends, strict=True)])
        bounds = np.concatenate([[0], np.cumsum(ends - starts)]).astype(np.int64)
        in_place, apart = _arguments(field, words), _arguments(field, words)
        apart.update(docs=copied, tfs=tfs, starts=bounds[:-1], ends=bounds[1:])
        saved = field.blocks(postings.terms)
        assert saved is not None
        blocks = (*saved, 128, field.params.b, field.avgdl, True)
        for passages in (None, (0, 1500), (1500, 3000)):
            got, want = (
                kernels.top_k_blocks(**args, blocks=blocks, passages=passages)  # type: ignore[arg-type]
                for args in (in_place, apart)
            )
            assert got[0].tolist() == want[0].tolist()
            assert got[1].tobytes() == want[1].tobytes()
        targets = np.arange(0, 3000, 3, dtype=np.uint32)
        one = kernels.scores_of(postings.docs, postings.tfs, starts, ends, postings.idf,
                                field.scoring, targets)  # fmt: skip
        other = kernels.scores_of(copied, tfs, bounds[:-1], bounds[1:], postings.idf,
                                  field.scoring, targets)  # fmt: skip
        assert one.tobytes() == other.tobytes() and one.any()


def test_threads_score_at_once_and_agree() -> None:
    """The loops run without the GIL, each thread on its own scratch: four threads scoring
    the same queries at once get the single-threaded results, bit for bit."""
    field = _field(n_docs=3000, seed=5)
    queries = [[f"w{i}", f"w{i + 1}", f"w{2 * i}"] for i in range(1, 30)]
    expected = [[*(a.tolist() for a in field.top(field.gather(q), 20))] for q in queries]
    results: dict[int, list[list[list[float]]]] = {}

    def work(n: int) -> None:
        results[n] = [[*(a.tolist() for a in field.top(field.gather(q), 20))] for q in queries]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(results[n] == expected for n in range(4))


def test_scores_of_sums_each_passage_in_term_order() -> None:
    """`scores_of` looks passages up many at a time: more targets than it runs side by side,
    passages no term holds, a term of one posting and an empty one, the same passage twice,
    all equal to the weights added in term order, bit for bit."""
    field = _field(n_docs=3000, seed=7)
    postings = field.gather(["w1", "w2", "w40", "w79", "nowhere"])
    docs, tfs = np.array([5, 9], dtype=np.uint32), np.array([2, 1], dtype=np.uint8)
    docs = np.concatenate([postings.docs, docs[:1]])  # a term of a single posting
    tfs = np.concatenate([postings.tfs, tfs[:1]])
    starts = np.concatenate([postings.starts, [len(docs) - 1, len(docs)]])  # and an empty one
    ends = np.concatenate([postings.ends, [len(docs), len(docs)]])
    idfs = np.concatenate([postings.idf, [1.25, 0.5]])
    targets = np.array([*range(0, 3000, 7), 5, 5, 2999], dtype=np.uint32)
    k1, norm = field.params.k1, field.norm
    expected = []
    for d in targets.tolist():
        total = 0.0
        for t in range(len(idfs)):
            where = np.flatnonzero(docs[starts[t] : ends[t]] == d)
            if len(where):
                tf = float(tfs[starts[t] + where[0]])
                total += float(idfs[t]) * (tf * (k1 + 1) / (tf + float(norm[d])))
        expected.append(total)
    found = kernels.scores_of(docs, tfs, starts, ends, idfs, field.scoring, targets)
    assert found.tolist() == expected
    assert found[targets.tolist().index(5)] > 0


def _forest() -> dict[str, np.ndarray]:
    """Two trees over rows of 2 features: (x0 ≤ 1 ? (x1 ≤ 0 ? 1 : 2) : 3) and a lone leaf 10."""
    return {
        "feature": np.array([0, 1], dtype=np.int64),
        "threshold": np.array([1.0, 0.0]),
        "left": np.array([1, ~0], dtype=np.int64),
        "right": np.array([~2, ~1], dtype=np.int64),
        "value": np.array([1.0, 2.0, 3.0, 10.0]),
        "roots": np.array([0, ~3], dtype=np.int64),
    }


def test_forest_sums_walks_every_tree() -> None:
    """A hand-checked forest: ties go left, a root may be a leaf, any rows' strides do."""
    rows = np.array([[1.0, 0.0], [1.0, 0.5], [1.5, -4.0], [0.0, -1.0]])
    forest = kernels.Forest.of(**_forest(), n_features=2)
    assert kernels.forest_sums(rows, forest).tolist() == [11.0, 12.0, 13.0, 11.0]
    assert kernels.forest_sums(rows[::2], forest).tolist() == [11.0, 13.0]
    many = np.tile(rows, (5, 1))
    assert kernels.forest_sums(many, forest).tolist() == [11.0, 12.0, 13.0, 11.0] * 5
    assert kernels.forest_sums(np.zeros((0, 2)), forest).tolist() == []


def _random_tree(rng: random.Random, n_features: int, leaves: int) -> dict[str, list]:
    """A tree of `leaves` leaves grown by splitting random leaves, in LightGBM's preorder
    layout (children after parents, split and leaf numbers within the tree); thresholds
    from a few values, so that rows often equal them."""
    # Grow: each node is ("leaf",) or ("split", feature, threshold, left, right).
    root: list = ["leaf"]
    open_leaves = [root]
    for _ in range(leaves - 1):
        node = open_leaves.pop(rng.randrange(len(open_leaves)))
        left, right = ["leaf"], ["leaf"]
        node[:] = [
            "split",
            rng.randrange(n_features),
            rng.choice([-1.0, 0.0, 0.5, 2.0]),
            left,
            right,
        ]
        open_leaves += [left, right]
    tree: dict[str, list] = {"feature": [], "threshold": [], "left": [], "right": [], "value": []}

    def number(node: list) -> int:
        if node[0] == "leaf":
            tree["value"].append(rng.choice([rng.uniform(-3, 3), 0.1, -0.1]))
            return ~(len(tree["value"]) - 1)
        at = len(tree["feature"])
        for key, value in (
            ("feature", node[1]),
            ("threshold", node[2]),
            ("left", 0),
            ("right", 0),
        ):
            tree[key].append(value)
        tree["left"][at] = number(node[3])
        tree["right"][at] = number(node[4])
        return at

    number(root)
    return tree


def _walk(trees: list[dict[str, list]], row: list[float]) -> float:
    """A row's sum of leaf values, walking down each tree in turn (x ≤ threshold: left)."""
    total = 0.0
    for tree in trees:
        node = 0 if tree["feature"] else ~0
        while node >= 0:
            right = row[tree["feature"][node]] > tree["threshold"][node]
            node = tree["right"][node] if right else tree["left"][node]
        total += tree["value"][~node]
    return total


@pytest.mark.parametrize("seed", range(6))
def test_forest_sums_equal_a_walk_down_each_tree(seed: int) -> None:
    """Random forests (one leaf to 64, lopsided or bushy, thresholds rows often equal, NaN
    going left): the laid-out sums equal a plain walk's, bit for bit."""
    rng = random.Random(seed)
    n_features = rng.randint(1, 6)
    trees = [_random_tree(rng, n_features, rng.choice([1, 2, 3, 15, 40, 64]))
             for _ in range(rng.randint(1, 30))]  # fmt: skip
    flat = _flat(trees)
    values = [-2.0, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0, float("nan")]
    rows = np.array([[rng.choice(values) for _ in range(n_features)] for _ in range(50)])
    found = kernels.forest_sums(rows, kernels.Forest.of(**flat, n_features=n_features))
    assert found.tobytes() == np.array([_walk(trees, row) for row in rows.tolist()]).tobytes()


def _flat(trees: list[dict[str, list]]) -> dict[str, np.ndarray]:
    """Trees in one set of arrays, as `retrieval.reader.Trees` holds them."""
    flat: dict[str, list] = {
        "feature": [],
        "threshold": [],
        "left": [],
        "right": [],
        "value": [],
        "roots": [],
    }
    for tree in trees:
        splits, leaves = len(flat["feature"]), len(flat["value"])
        flat["roots"].append(splits if tree["feature"] else ~leaves)
        flat["feature"] += tree["feature"]
        flat["threshold"] += tree["threshold"]
        for side in ("left", "right"):
            flat[side] += [c + splits if c >= 0 else ~(~c + leaves) for c in tree[side]]
        flat["value"] += tree["value"]
    return {
        key: np.array(values, dtype=np.float64 if key in ("threshold", "value") else np.int64)
        for key, values in flat.items()
    }


@pytest.mark.parametrize(
    ("name", "bad", "says"),
    [
        ("left", np.array([0, ~0], dtype=np.int64), "children must be later splits or leaves"),
        ("right", np.array([~4, ~1], dtype=np.int64), "children must be later splits or leaves"),
        ("feature", np.array([0, 2], dtype=np.int64), "feature must be a column"),
        ("feature", np.array([-1, 1], dtype=np.int64), "feature must be a column"),
        ("roots", np.array([2], dtype=np.int64), "roots must be splits or leaves"),
        ("threshold", np.ones(3), "must have one length"),
        ("right", np.array([~2, ~2], dtype=np.int64), "every split and leaf must be in one tree"),
        ("roots", np.array([0, 1], dtype=np.int64), "every split and leaf must be in one tree"),
    ],
)
def test_forest_layout_refuses_trees_a_walk_could_loop_in(
    name: str, bad: object, says: str
) -> None:
    """A child before its parent (a loop), an index out of the arrays, or a node in two
    places is a ValueError."""
    forest = _forest() | {name: bad}
    with pytest.raises(ValueError, match=says):
        kernels.Forest.of(**forest, n_features=2)  # type: ignore[arg-type]


def test_forest_layout_refuses_more_than_64_leaves_a_tree() -> None:
    rng = random.Random(5)
    flat = _flat([_random_tree(rng, 3, 64)])
    assert kernels.Forest.of(**flat, n_features=3).first.tolist() == [0, 64]
    flat = _flat([_random_tree(rng, 3, 65)])
    with pytest.raises(ValueError, match="at most 64 leaves"):
        kernels.Forest.of(**flat, n_features=3)


@pytest.mark.parametrize(
    ("name", "bad", "says"),
    [
        ("starts", np.array([0, 1], dtype=np.int64), "starts must hold n_features \\+ 1"),
        ("starts", np.array([0, 3, 1], dtype=np.int64), "starts must run from 0 to the number"),
        ("trees", np.array([0, 2], dtype=np.int64), "a split's tree must be one of the trees"),
        ("trees", np.array([0, -1], dtype=np.int64), "a split's tree must be one of the trees"),
        ("first", np.array([0, 4, 4], dtype=np.int64), "a tree must have 1 to 64 leaves"),
        ("first", np.array([0, 3, 5], dtype=np.int64), "first must run from 0 to the number"),
        ("masks", np.zeros(2, dtype=np.int64), "masks must be one-dimensional"),
    ],
)
def test_forest_sums_refuses_layouts_that_would_read_outside(
    name: str, bad: np.ndarray, says: str
) -> None:
    """The C loop checks every index it follows; a wrong one is a ValueError, not a crash."""
    layout = kernels.Forest.of(**_forest(), n_features=2)
    arrays = {
        key: getattr(layout, key)
        for key in ("starts", "thresholds", "trees", "masks", "values", "first")
    }
    arrays[name] = bad
    with pytest.raises(ValueError, match=says):
        _kernels.forest_sums(np.zeros(4), 2, *arrays.values(), np.zeros(2))


def test_forest_sums_checks_the_rows() -> None:
    layout = kernels.Forest.of(**_forest(), n_features=2)
    arrays = [
        getattr(layout, key)
        for key in ("starts", "thresholds", "trees", "masks", "values", "first")
    ]
    with pytest.raises(ValueError, match="n_features values for each entry of out"):
        _kernels.forest_sums(np.zeros(5), 2, *arrays, np.zeros(3))
    with pytest.raises(ValueError, match="n_features must be positive"):
        _kernels.forest_sums(np.zeros(0), 0, *arrays, np.zeros(0))


def test_drop_pages_takes_only_a_read_only_file_mapping(tmp_path: Path) -> None:
    """Dropping pages of the process's own memory would zero it: anything but a read-only
    mmap.mmap is refused, and a dropped mapping reads the file's bytes again."""
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 64)
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m:
        assert m[:3] == bytes([0, 1, 2])
        kernels.drop_pages(m)
        assert m[:] == path.read_bytes()
    with pytest.raises(TypeError, match="mmap"):
        _kernels.drop_pages(bytearray(4096))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mmap"):
        _kernels.drop_pages(np.zeros(4096, np.uint8))  # type: ignore[arg-type]
    with path.open("r+b") as handle, mmap.mmap(handle.fileno(), 0) as writable:
        with pytest.raises(ValueError, match="read-only"):
            _kernels.drop_pages(writable)
        assert writable[:3] == bytes([0, 1, 2])
