"""faiss retrieval over the dictionary and user documents, through the langchain retriever interface."""

from __future__ import annotations

import pytest
from langchain_core.retrievers import BaseRetriever

from core_model.errors import DSuiteError
from domains.finance.retrieval import FinanceRetriever, chunk_text, finance_retriever, read_document


def test_user_documents_are_retrieved(tmp_path):
    note = tmp_path / "plan.md"
    note.write_text(
        "# My pension plan\n\nThe plan charges a yearly fee of 0.4% of assets.\n\n"
        "Withdrawals before age 59 are taxed with a penalty.\n\n"
        "The employer matches half of my contributions."
    )
    retriever = FinanceRetriever(k=2)
    assert isinstance(retriever, BaseRetriever)
    assert retriever.add_document(note) == 4
    docs = retriever.invoke("how much does my plan cost per year")
    assert docs[0].metadata["kind"] == "document" and "0.4%" in docs[0].page_content
    assert docs[0].metadata["source"] == "plan.md" and docs[0].metadata["score"] > 0.3


def test_dictionary_index_answers_by_meaning():
    retriever = finance_retriever(k=3)
    docs = retriever.invoke("the ratio of a share's price to the company's earnings per share")
    assert "price-to-earnings ratio" in [d.metadata.get("term") for d in docs]
    assert len(retriever.dictionary.texts) >= 5000


def test_documents_errors_and_chunking(tmp_path):
    with pytest.raises(DSuiteError, match="not found"):
        read_document(tmp_path / "missing.txt")
    odd = tmp_path / "sheet.xlsx"
    odd.write_text("x")
    with pytest.raises(DSuiteError, match="supported: .txt, .md, .pdf"):
        read_document(odd)
    chunks = chunk_text(("A sentence of moderate length. " * 40) + "\n\nShort paragraph.", max_chars=200)
    assert all(len(c) <= 200 for c in chunks[:-1]) and chunks[-1] == "Short paragraph."
