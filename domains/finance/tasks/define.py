"""``finance.define``: find the FIBO concept from its definition (reverse dictionary lookup).

Each example is one FIBO class (every 10th, deterministic); the query is its definition and the target
its entry. The system is the dictionary retriever (faiss over all-MiniLM-L6-v2 embeddings of
``term (synonyms): definition``); baseline ``tfidf`` ranks the same entries by TF-IDF cosine.
Metrics: recall@1, recall@5 and MAP over the ranked refs. Touches the shared ``fibo_glossary``.
"""

from __future__ import annotations

from domains.finance.resources import FINANCE_DATA
from eval.registry import SystemSpec, Task

STRIDE = 10
K = 5


def load(split: str) -> list[dict]:  # noqa: ARG001 - one split
    """Every 10th FIBO class with its definition as the query."""
    from eval.data.fibo import load_fibo_terms

    classes = [r for r in load_fibo_terms() if r.get("kind") == "class"]
    return [
        {"id": r["source_iri"], "query": r["definition"], "ref": r["source_iri"], "term": r["term"]}
        for r in classes[::STRIDE]
    ]


def _tfidf_rank(queries: list[str]) -> list[list[str]]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import linear_kernel

    from domains.finance.dictionary import load_dictionary
    from domains.finance.retrieval import entry_text

    terms = load_dictionary().terms
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1)
    matrix = vectorizer.fit_transform([entry_text(t) for t in terms])
    sims = linear_kernel(vectorizer.transform(queries), matrix)
    return [[terms[i].ref for i in row.argsort()[::-1][:K]] for row in sims]


def predict(examples: list[dict], system: SystemSpec) -> list[dict]:
    """The top-5 dictionary refs per query."""
    queries = [e["query"] for e in examples]
    if system.baseline == "tfidf":
        return [{"ranked": r} for r in _tfidf_rank(queries)]
    from domains.finance.retrieval import dictionary_index

    index = dictionary_index(progress=False)
    return [{"ranked": [index.metadata[row]["ref"] for _, row in index.search(q, K)]} for q in queries]


def score(examples: list[dict], outputs: list[dict]) -> dict[str, float]:
    """Recall@1, recall@5 and MAP."""
    from eval.metrics import mean_average_precision, mean_recall_at_k

    ranked = [o["ranked"] for o in outputs]
    relevant = [{e["ref"]} for e in examples]
    return {
        "recall@1": mean_recall_at_k(ranked, relevant, 1),
        "recall@5": mean_recall_at_k(ranked, relevant, K),
        "map": mean_average_precision(ranked, relevant),
    }


def build_task() -> Task:
    """The task object."""
    return Task(
        depends_on=(FINANCE_DATA,),
        name="finance.define",
        dataset="fibo_glossary",
        description="Reverse dictionary: FIBO concept from its definition (recall@1/@5, MAP)",
        load=load,
        predict=predict,
        score=score,
        primary_metric="recall@1",
        baselines=("tfidf",),
        needs_model=False,
        batch_size=64,
    )
