"""The command-line contract, through the real console script in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.format import EXAMPLE_QUESTION as EXAMPLE
from bot.settings import Settings
from retrieval.search import Searcher
from tests.conftest import SHARED

SOURCE = "000_f1c283b55319c401.txt"


def _command() -> list[str]:
    script = shutil.which("archive-bot", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "bot.cli"]


def run(args: list[str], settings: Settings, stdin: str | None = None, **env: str):
    environ = {
        **os.environ,
        "ARCHIVE_BOT_INDEX_DIR": str(settings.resolved_index_dir),
        "ARCHIVE_BOT_ARCHIVE_DIR": str(settings.archive_dir),
        **env,
    }
    return subprocess.run(
        [*_command(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        check=False,
    )


def test_ask_prints_answer_then_passages_with_sources(seed_settings: Settings) -> None:
    done = run(["ask", EXAMPLE], seed_settings)
    assert done.returncode == 0, done.stderr
    first_line = done.stdout.splitlines()[0]
    assert "40多家" in first_line
    assert SOURCE in done.stdout and "溧阳工会爱心暑托班点亮多彩假期" in done.stdout


def test_ask_json_follows_the_contract(seed_settings: Settings) -> None:
    done = run(["ask", "--json", "--top", "4", EXAMPLE], seed_settings)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {"question", "answer", "short_answer", "passages"}
    assert result["question"] == EXAMPLE and "40多家" in result["answer"]
    short = result["short_answer"]
    assert short is None or (short and short in result["answer"])
    assert [p["rank"] for p in result["passages"]] == [1, 2, 3, 4]
    scores = [p["score"] for p in result["passages"]]
    assert scores == sorted(scores, reverse=True)
    for passage in result["passages"]:
        assert set(passage) == {"id", "rank", "score", "text", "source"}
        assert set(passage["source"]) == {"file", "title", "paragraph", "start", "end", "date"}
        assert isinstance(passage["source"]["paragraph"], int)
        assert "<" not in passage["text"]
    assert result["passages"][0]["source"]["file"] == SOURCE


def test_ask_json_stdin_is_jsonl_in_order(seed_settings: Settings) -> None:
    questions = [EXAMPLE, "古雷开发区开展了多少场次反诈宣传", "溧陽暑託班有多少家"]
    done = run(["ask", "--json", "-"], seed_settings, stdin="\n".join(questions) + "\n")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["question"] for line in lines] == questions
    assert "127余场次" in lines[1]["answer"] and "40多家" in lines[2]["answer"]


def test_missing_archive_is_a_clear_error(seed_settings: Settings, tmp_path: Path) -> None:
    done = run(["ask", EXAMPLE], seed_settings, ARCHIVE_BOT_ARCHIVE_DIR=str(tmp_path / "none"))
    assert done.returncode != 0 and done.stdout == ""
    assert "ARCHIVE_BOT_ARCHIVE_DIR" in done.stderr and "Traceback" not in done.stderr


def test_index_prints_what_it_built(seed_settings: Settings, tmp_path: Path) -> None:
    done = run(["index"], seed_settings, ARCHIVE_BOT_INDEX_DIR=str(tmp_path / "idx"))
    assert done.returncode == 0, done.stderr
    assert "5 files" in done.stdout and "passages" in done.stdout and "tokens" in done.stdout


@pytest.mark.parametrize("top", ["0", "abc"])
def test_bad_top_is_refused(seed_settings: Settings, top: str) -> None:
    done = run(["ask", "--top", top, EXAMPLE], seed_settings)
    assert done.returncode == 2 and "--top" in done.stderr


def test_eval_prints_figures(seed_settings: Settings) -> None:
    done = run(["eval", "--json", str(SHARED / "eval" / "seed_qa.jsonl")], seed_settings)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["questions"] == 22
    assert {"recall@1", "recall@3", "recall@5", "mrr", "answer_hit", "missed"} <= set(figures)
    text = run(["eval", str(SHARED / "eval" / "seed_qa.jsonl")], seed_settings)
    assert "recall@3" in text.stdout and "MRR" in text.stdout


def test_repl_answers_pages_and_quits(seed_settings: Settings) -> None:
    done = run(["repl"], seed_settings, stdin=f"{EXAMPLE}\n:more\n\n:quit\n")
    assert done.returncode == 0, done.stderr
    assert "40多家" in done.stdout and done.stdout.count(SOURCE) >= 1
    eof = run(["repl"], seed_settings, stdin=f"{EXAMPLE}\n")  # Ctrl-D ends cleanly
    assert eof.returncode == 0 and "Traceback" not in eof.stderr


def test_ask_json_passages_carry_ids_and_dates(seed_settings: Settings) -> None:
    done = run(["ask", "--json", EXAMPLE], seed_settings)
    passages = json.loads(done.stdout)["passages"]
    assert all(len(p["id"]) == 16 for p in passages)
    assert len({p["id"] for p in passages}) == len(passages)
    assert all(p["source"]["date"] is None for p in passages)  # the seeds name no date
    again = json.loads(run(["ask", "--json", EXAMPLE], seed_settings).stdout)["passages"]
    assert [p["id"] for p in again] == [p["id"] for p in passages]


def test_show_prints_the_whole_article_as_text_and_json(seed_settings: Settings) -> None:
    best = json.loads(run(["ask", "--json", EXAMPLE], seed_settings).stdout)["passages"][0]
    done = run(["show", best["id"]], seed_settings)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"《{best['source']['title']}》\n{SOURCE}")
    assert best["text"] in done.stdout
    shown = json.loads(run(["show", "--json", best["id"]], seed_settings).stdout)
    assert set(shown) == {"id", "file", "title", "date", "text"}
    assert shown["id"] == best["id"] and shown["file"] == SOURCE and best["text"] in shown["text"]


@pytest.mark.parametrize(("passage_id", "says"), [("A" * 16, "changed"), ("bad", "not a passage")])
def test_show_unknown_or_malformed_id_fails(seed_settings: Settings, passage_id: str, says: str):
    done = run(["show", passage_id], seed_settings)
    assert done.returncode != 0 and not done.stdout
    assert says in done.stderr


def _fresh_ask(seed_settings: Settings, report: str, **env: str) -> str:
    """The last line a fresh process prints with `report` after answering `ask` on the seeds.

    Callers ask for the `seed_searcher` fixture too, so that the process only opens the index.
    It gets this one's environment without the BLAS thread count that importing `bot` set
    here: a user's shell has none.
    """
    script = f"import sys; from bot.cli import main; code = main(['ask', sys.argv[1]]); {report}"
    environ = {
        **{k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"},
        "ARCHIVE_BOT_INDEX_DIR": str(seed_settings.resolved_index_dir),
        "ARCHIVE_BOT_ARCHIVE_DIR": str(seed_settings.archive_dir),
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-c", script, EXAMPLE], capture_output=True, text=True, env=environ,
        timeout=120, check=True,
    )  # fmt: skip
    return done.stdout.splitlines()[-1]


def test_ask_imports_only_what_it_needs(seed_settings: Settings, seed_searcher: Searcher) -> None:
    """A fresh `ask` on the seeds loads no Telegram code, no jieba (rjieba is the segmenter)
    and no numba (the kernels are compiled C): each costs a fresh start 0.1–0.3 s; nor the
    archive's reading and cleaning (its patterns take about 12 ms to compile), numpy.ma (6 ms)
    or the evaluation."""
    unwanted = (
        *("telegram", "jieba", "numba", "numpy.ma"),
        *("retrieval.archive", "retrieval.evaluate"),
    )
    report = f"print(sorted(m for m in {unwanted} if m in sys.modules))"
    assert _fresh_ask(seed_settings, report) == "[]"


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux's /proc")
def test_the_retrieval_library_alone_starts_no_blas_threads() -> None:
    """Importing `retrieval` without `bot` (the benchmarks, a program embedding it) before
    numpy caps OpenBLAS at one thread too, as the bot runs; a thread count in the environment
    is kept."""
    status = "open('/proc/self/status').read().split()"
    script = (
        "import threading, retrieval.search, numpy; numpy.ones((64, 64)) @ numpy.ones((64, 64));"
        f"s = {status}; print(int(s[s.index('Threads:') + 1]) - threading.active_count())"
    )
    environ = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}

    def extra_threads(**env: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True,
            env={**environ, **env}, timeout=120, check=True,
        )  # fmt: skip
        return done.stdout.strip()

    assert extra_threads() == "0"
    assert extra_threads(OPENBLAS_NUM_THREADS="2") == "1"


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux's /proc")
def test_ask_starts_no_blas_threads_unless_asked(
    seed_settings: Settings, seed_searcher: Searcher
) -> None:
    """OpenBLAS's thread pool (about 50 ms of a fresh start) is not started, unless the
    environment asks for threads: the process's threads beyond Python's own (the main thread
    and the helper that scores a question's second field)."""
    status = "open('/proc/self/status').read().split()"
    threads = f"int({status}[{status}.index('Threads:') + 1])"
    report = f"import threading; print({threads} - threading.active_count())"
    assert _fresh_ask(seed_settings, report) == "0"
    assert _fresh_ask(seed_settings, report, OPENBLAS_NUM_THREADS="2") == "1"
