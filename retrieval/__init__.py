"""Retrieval core: archive files → clean text → articles → passages → tokens → BM25 → answers.

This package knows nothing of Telegram, settings or printing; `bot/` composes it.
"""
