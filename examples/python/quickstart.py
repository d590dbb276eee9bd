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
# prompt_name picks a prompt of config_sentence_transformers.json (nomic-ai/modernbert-embed-base:
# "query" -> "search_query: ", "document" -> "search_document: "); None = the model's default.
q_prompt = "query" if "query" in model.prompts else None
d_prompt = "document" if "document" in model.prompts else None
doc_emb = model.encode(docs, prompt_name=d_prompt, normalize_embeddings=True)
query_emb = model.encode(query, prompt_name=q_prompt, normalize_embeddings=True)
print("embeddings:", doc_emb.shape, doc_emb.dtype, "prompts:", model.prompts)
print("cosine similarities:", np.round(doc_emb @ query_emb, 4))

# rerank: a cross-encoder's scores, ColBERT MaxSim, or (here) the same cosines, best first.
hits = model.rerank(query, docs, top_n=2, return_documents=True,
                    query_prompt_name=q_prompt, document_prompt_name=d_prompt)
for hit in hits:
    print(f"{hit['score']:.4f}  {hit['text']}")

try:
    model.encode(["fine", "word " * 100_000])  # longer than the model's max length
except modernbert.InputError as e:
    print(f"input {e.index} refused ({e.kind}): {e}")
