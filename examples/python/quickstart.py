#!/usr/bin/env python3
"""modernbert.cpp from Python: embeddings with a prompt, then reranking.

    python3 examples/python/quickstart.py path/to/modernbert-embed-base

(Built with the project: PYTHONPATH=build/python; installed: `import modernbert` works as is.)
"""
import sys

import numpy as np

import modernbert

model = modernbert.Model(sys.argv[1], threads=0)  # dtype="bf16" / "int8" for a faster, smaller model
print(model)

docs = [
    "ModernBERT is an encoder with rotary position embeddings and 8192-token context.",
    "The Eiffel Tower is in Paris.",
    "Bananas are rich in potassium.",
]
query = "Which model supports long inputs?"

# sentence-transformers style: a list gives a float32 array [N, D], one str a vector [D].
# prompt_name picks a prompt of config_sentence_transformers.json (nomic: "search_query: " ...);
# here the prompt is given literally, which works with any model.
doc_emb = model.encode(docs, prompt="search_document: ", normalize_embeddings=True)
query_emb = model.encode(query, prompt="search_query: ", normalize_embeddings=True)
print("embeddings:", doc_emb.shape, doc_emb.dtype)
print("cosine similarities:", np.round(doc_emb @ query_emb, 4))

# rerank: a cross-encoder's scores, ColBERT MaxSim, or (here) embedding cosine, best first.
for hit in model.rerank(query, docs, top_n=2, return_documents=True):
    print(f"{hit['score']:.4f}  {hit['text']}")

try:
    model.encode(["fine", "word " * 100_000])  # longer than the model's max length
except modernbert.InputError as e:
    print(f"input {e.index} refused ({e.kind}): {e}")
