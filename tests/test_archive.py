"""Archive: reading and decoding files, and cleaning OCR'd text into paragraphs."""

from __future__ import annotations

import json
import random
import unicodedata
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retrieval.archive import Skipped, clean_text, decode, normalize, read_document
from retrieval.chars import nfkc
from retrieval.errors import ArchiveError
from retrieval.listing import list_archive
from retrieval.models import Document
from retrieval.segments import build_index
from retrieval.tokenize import Tokenizer

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"
SHARED = REPO.parent / "shared" / "eval"
CMRC = SHARED / "cmrc2018_dev"

TEXT = "睽违三载 初心不改\n\n8月15日，常州市工人文化宫焕新归来。"


@cache
def seed_paragraphs(name: str) -> list[str]:
    """Cleaned paragraphs of the seed file whose name starts with `name`."""
    (path,) = SEEDS.glob(f"{name}*.txt")
    return clean_text(path.read_text(encoding="utf-8"))


def _lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# Reading -------------------------------------------------------------------------------------


def read_all(root: Path) -> tuple[list[Document], list[Skipped]]:
    """Every file of an archive read as a build reads it: listed, then decoded one by one."""
    read = [read_document(file.path, file.name) for file in list_archive(root)]
    documents = [item for item in read if isinstance(item, Document)]
    return documents, [item for item in read if isinstance(item, Skipped)]


def _archive(root: Path) -> None:
    """A small archive with one file of every kind a build meets."""
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a_utf8.txt").write_bytes(TEXT.encode("utf-8"))
    (root / "b_bom.txt").write_bytes(TEXT.encode("utf-8-sig"))
    (root / "c_utf16.txt").write_bytes(TEXT.encode("utf-16"))
    (root / "d_gb18030.txt").write_bytes(TEXT.encode("gb18030"))
    (root / "sub" / "deeper" / "e.txt").write_bytes(TEXT.encode("utf-8"))
    (root / "junk.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (root / "empty.txt").write_bytes(b" \n\t\r\n")
    (root / "notes.md").write_text("# not an archive file", encoding="utf-8")
    (root / "image.png").write_bytes(b"\x89PNG\r\n")
    (root / "folder.txt").mkdir()  # matches *.txt but cannot be read as a file
    (root / "gone.txt").symlink_to(root / "missing-target.txt")


def test_reading_decodes_every_encoding_and_sorts_by_path(tmp_path: Path) -> None:
    _archive(tmp_path)
    documents, _ = read_all(tmp_path)
    paths = [document.path for document in documents]
    assert paths == ["a_utf8.txt", "b_bom.txt", "c_utf16.txt", "d_gb18030.txt", "sub/deeper/e.txt"]
    assert all(document.text == TEXT for document in documents)  # BOMs stripped


def test_reading_skips_bad_files_with_a_reason(tmp_path: Path) -> None:
    _archive(tmp_path)
    _, skipped = read_all(tmp_path)
    reasons = {item.path: item.reason for item in skipped}
    assert set(reasons) == {"empty.txt", "folder.txt", "gone.txt", "junk.txt"}
    assert reasons["empty.txt"] == "empty"
    assert reasons["junk.txt"].startswith("not text")
    assert reasons["folder.txt"].startswith("cannot be read")
    assert reasons["gone.txt"].startswith("cannot be read")
    assert all(isinstance(item, Skipped) for item in skipped)


def test_building_a_missing_archive_says_what_to_check(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="ARCHIVE_BOT_ARCHIVE_DIR"):
        build_index(tmp_path / "nowhere", tmp_path / "index", Tokenizer())


def test_building_an_archive_without_readable_files_is_an_error(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "junk.txt").write_bytes(random.Random(0).randbytes(2048))
    (archive / "readme.md").write_text("正文。", encoding="utf-8")
    with pytest.raises(ArchiveError, match=r"1 skipped.*ARCHIVE_BOT_ARCHIVE_DIR"):
        build_index(archive, tmp_path / "index", Tokenizer())


def test_reading_the_seeds() -> None:
    documents, skipped = read_all(SEEDS)
    assert [document.path[:3] for document in documents] == ["000", "001", "002", "003", "004"]
    assert skipped == []


def test_decode_rejects_binary_junk() -> None:
    assert decode(b"abc\x00def") is None
    assert decode(b"\x01\x02\x03abc" * 20) is None
    # Seeded: 16 random bytes are valid GB18030 text without control characters one time in
    # 25, so short junk proves nothing and an unseeded test fails now and then.
    junk = [random.Random(seed).randbytes(size) for seed in range(20) for size in (256, 4096)]
    assert all(decode(data) is None for data in junk)


def test_decode_keeps_utf8_with_a_truncated_last_character() -> None:
    assert decode(TEXT.encode("utf-8")[:-1]) == TEXT[:-1]


def test_decode_reads_gb18030_that_is_mostly_ascii() -> None:
    text = "MH 60 report " * 40 + "中文结尾"
    assert decode(text.encode("gb18030")) == text


# Cleaning: characters and spaces -------------------------------------------------------------


def test_nfkc_makes_full_width_ascii_but_keeps_the_chinese_ellipsis() -> None:
    assert normalize("１２７余场，ＡＢＣ！") == "127余场,ABC!"
    assert normalize("预警劝阻7300多条……") == "预警劝阻7300多条……"


def test_zero_width_and_control_characters_and_crlf_go() -> None:
    text = "\ufeff第一\u200b段\u200d话。\x07\r\n\r\n第二段话。\r"
    assert clean_text(text) == ["第一段话。", "第二段话。"]


def test_letter_spaced_ocr_closes_up() -> None:
    # 004, a letter-spaced line and its hard-wrapped continuation.
    text = "诈 宣 传 127 余 场 次 ，覆 盖 辖 区 群 众 、在 校 学\n生、单位职工 20 万余人。"
    assert clean_text(text) == ["诈宣传127余场次,覆盖辖区群众、在校学生、单位职工20万余人。"]


def test_spaces_between_words_and_latin_text_stay() -> None:
    assert clean_text("睽违三载 初心不改 常州市工人文化宫焕新归来") == [
        "睽违三载 初心不改 常州市工人文化宫焕新归来"
    ]
    assert clean_text("MH 60 Hello world。") == ["MH 60 Hello world。"]
    assert clean_text("2023 威克多·中国羽毛球公开赛9月开打") == [
        "2023威克多·中国羽毛球公开赛9月开打"
    ]
    assert clean_text("各乡镇 (街道)武馆。") == ["各乡镇(街道)武馆。"]


# Cleaning: joining broken lines, keeping headlines apart -------------------------------------


def test_paragraphs_broken_across_blank_lines_are_joined() -> None:
    paragraphs = seed_paragraphs("000")
    assert any("“劳模专家名师团”,采用“订单式”模式" in p for p in paragraphs)
    assert any("溧阳还有40多家。溧阳市总工会相关负责人表示" in p for p in paragraphs)


def test_headlines_stay_their_own_paragraph() -> None:
    paragraphs = seed_paragraphs("000")
    for headline in (
        "睽违三载 初心不改 常州市工人文化宫焕新归来",
        "溧阳工会爱心暑托班点亮多彩假期",
    ):
        assert headline in paragraphs
    assert paragraphs[paragraphs.index("溧阳工会爱心暑托班点亮多彩假期") + 1].startswith(
        "今年暑假"
    )


def test_hard_wrapped_text_with_blank_lines_mid_sentence() -> None:
    paragraphs = seed_paragraphs("004")
    assert any("开展入社区、校园、企业多形式反诈宣传127余场次,覆盖" in p for p in paragraphs)
    assert any(
        "制定下发《古雷开发区防范电信网络新型违法犯罪联动宣传工作方案》" in p for p in paragraphs
    )


def test_headline_inside_a_block_of_lines_is_split_off() -> None:
    paragraphs = seed_paragraphs("004")
    index = paragraphs.index("捂紧百姓钱袋子 构建反诈新格局")
    assert paragraphs[index + 1].startswith("刷单、杀猪盘、网络贷款、冒充购物客服……近年来")


def test_a_one_character_clause_continues_the_paragraph_before() -> None:
    # 002: "...新型诈骗小视" / "" / "频、防诈骗录音..." — a short line that is not a headline.
    paragraphs = seed_paragraphs("002")
    assert any("推送防范电信网络新型诈骗小视频、防诈骗录音" in p for p in paragraphs)
    assert any("宣讲会等多种方式,并组织网格员" in p for p in paragraphs)


def test_markdown_headings_sub_headlines_and_bylines_stay_apart() -> None:
    assert "## 爱心托管班缓解暑期看护难" in seed_paragraphs("002")
    paragraphs = seed_paragraphs("003")
    assert paragraphs[:3] == [
        "构筑反诈“防火墙” 守护群众“钱袋子”",
        "——殷都区推进反电信网络诈骗工作侧记",
        "□本报记者 梁亚杰",
    ]
    assert (
        "本报讯(记者 梁亚杰)10月21日,殷都区政协组织部分政协委员到区政务服务中心办事大厅,对"
        "优化营商环境工作进行调研。" in paragraphs
    )


def test_a_byline_ending_a_paragraph_is_split_off() -> None:
    paragraphs = seed_paragraphs("000")
    index = paragraphs.index("通讯员 盛锡金 记者 吴文龙")
    assert paragraphs[index - 1].endswith("让群众放心用电、安心度夏。")
    assert paragraphs[index + 1] == "溧阳工会爱心暑托班点亮多彩假期"


def test_lead_with_a_byline_joins_its_hard_wrapped_rest() -> None:
    # 004: "本报讯（记者 丁汉钦）12 月 13" / "" / "日，市政协副主席..."
    assert (
        "本报讯(记者 丁汉钦)12月13日,市政协副主席杨胜华带领市直相关单位负责人,深入芗城区、"
        "龙文区开展创城督查工作。" in seed_paragraphs("004")
    )


def test_exact_repeats_are_dropped() -> None:
    paragraphs = seed_paragraphs("001")
    assert sum(p.startswith("日前,中车戚墅堰公司团委开展") for p in paragraphs) == 1
    assert len(paragraphs) == len(set(paragraphs))
    assert all(p and p == p.strip() for p in paragraphs)


# Cleaning against the evaluation sets --------------------------------------------------------


@pytest.mark.parametrize(
    "question", _lines(SHARED / "seed_qa.jsonl") if SHARED.exists() else [], ids=lambda q: q["id"]
)
def test_seed_answers_survive_cleaning_intact(question: dict[str, Any]) -> None:
    paragraphs = seed_paragraphs(str(question["source"])[:3])
    for needle in question["must_contain"]:
        assert any(needle in paragraph for paragraph in paragraphs), needle


@pytest.mark.skipif(not CMRC.exists(), reason="CMRC 2018 eval set not in ../shared/eval")
def test_cmrc_titles_stay_apart_and_answers_survive() -> None:
    texts = {path.name: path.read_text(encoding="utf-8") for path in CMRC.glob("archive/*.txt")}
    paragraphs = {name: clean_text(text) for name, text in texts.items()}
    titles_apart = sum(
        len(paragraphs[name]) >= 2 and paragraphs[name][0] == clean_text(text.split("\n")[0])[0]
        for name, text in texts.items()
        if text.split("\n")[0].strip()
    )
    assert titles_apart >= 0.99 * len(texts)
    # NFKC changes some answers ("，" → ","), so they are looked for normalised the same way.
    needles = [
        (str(q["source"]), normalize(needle).strip())
        for q in _lines(CMRC / "questions.jsonl")
        for needle in q["must_contain"]
    ]
    found = sum(any(n in p for p in paragraphs[source]) for source, n in needles)
    assert found >= 0.99 * len(needles)


# NFKC fast path: the same text as unicodedata's, "…" kept ------------------------------------

_NFKC_ALPHABET = [
    *map(chr, range(0x20, 0x7F)),
    *map(chr, range(0x3000, 0x3040)),
    *map(chr, range(0xFF00, 0xFFF0)),
    "…", "溧", "阳", "é", "\u0301", "\u3099", "か", "\u1100", "\u1161", "\u11a8", "가",
    "①", "ﬁ", "㈱", "\n", "\t", "\u200b", "𠀀",
]  # fmt: skip


@given(st.text(st.sampled_from(_NFKC_ALPHABET), max_size=40))
def test_nfkc_fast_path_equals_unicodedata(text: str) -> None:
    expected = "…".join(unicodedata.normalize("NFKC", part) for part in text.split("…"))
    assert nfkc(text) == expected


@given(st.text(st.sampled_from(_NFKC_ALPHABET), min_size=256, max_size=600))
def test_nfkc_of_long_text_equals_unicodedata(text: str) -> None:
    """Long text takes the quick check or the bulk path: still unicodedata's NFKC, "…" kept."""
    expected = "…".join(unicodedata.normalize("NFKC", part) for part in text.split("…"))
    assert nfkc(text) == expected
