"""Fixtures shared by the RAG tests (defined in ragkit.py): a tiny random BERT encoder, a real PostgreSQL
server, and `store_url`/`backend`, which run a test once on SQLite and once on PostgreSQL."""

from ragkit import backend, pg_uri, store_url, tiny_bert_folder, tiny_embedder  # noqa: F401
