# Type stub of the `modernbert` extension module (python/modernbert_module.cpp; docstrings there).
import os
from typing import Any, Literal, Sequence, overload

import numpy as np
import numpy.typing as npt

__version__: str

Text = str | bytes

class ModernBertError(RuntimeError): ...

class InputError(ModernBertError, ValueError):
    index: int
    kind: Literal["empty", "too_long", "tokenizer", "id_out_of_range", "no_mask", "invalid"]
    detail: str

class Model:
    def __init__(
        self,
        path: str | bytes | os.PathLike[str],
        dtype: Literal["f32", "bf16", "f16", "int8"] | str | None = None,
        threads: int = 0,
        max_batch_tokens: int = 16384,
        truncate: bool = False,
        lossy_utf8: bool = False,
    ) -> None: ...
    def encode(
        self,
        sentences: Text | Sequence[Text],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: Literal["sentence_embedding", "token_embeddings"] = "sentence_embedding",
        precision: Literal["float32", "int8", "uint8", "binary", "ubinary"] = "float32",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | None = None,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
        pooling: Literal["cls", "mean", "max"] | None = None,
        is_query: bool = False,
    ) -> Any:
        """str -> float32 [D]; list -> float32 [N, D] (see the docstring for the other modes)."""
    @overload
    def encode_tokens(self, texts: Text, is_query: bool = False, prefix: str | None = None) -> npt.NDArray[np.float32]: ...
    @overload
    def encode_tokens(
        self, texts: Sequence[Text], is_query: bool = False, prefix: str | None = None
    ) -> list[npt.NDArray[np.float32]]: ...
    @overload
    def classify(self, texts: Text, pairs: Text | None = None) -> dict[str, Any]: ...
    @overload
    def classify(
        self, texts: Sequence[Text] | Sequence[tuple[Text, Text]], pairs: Sequence[Text] | None = None
    ) -> list[dict[str, Any]]: ...
    @overload
    def classify_tokens(self, texts: Text) -> list[dict[str, Any]]: ...
    @overload
    def classify_tokens(self, texts: Sequence[Text]) -> list[list[dict[str, Any]]]: ...
    def fill_mask(self, texts: Text | Sequence[Text], top_k: int = 5) -> list[Any]: ...
    def rerank(
        self,
        query: Text,
        documents: Sequence[Text],
        top_n: int | None = None,
        mode: Literal["auto", "cross-encoder", "colbert", "embedding"] = "auto",
        return_documents: bool = False,
        query_prompt_name: str | None = None,
        document_prompt_name: str | None = None,
    ) -> list[dict[str, Any]]: ...
    def rank(
        self,
        query: Text,
        documents: Sequence[Text],
        top_k: int | None = None,
        return_documents: bool = False,
        mode: Literal["auto", "cross-encoder", "colbert", "embedding"] = "auto",
    ) -> list[dict[str, Any]]: ...
    @overload
    def tokenize(self, texts: Text, add_special_tokens: bool = True) -> dict[str, Any]: ...
    @overload
    def tokenize(self, texts: Sequence[Text], add_special_tokens: bool = True) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...
    def __enter__(self) -> Model: ...
    def __exit__(self, *args: object) -> None: ...
    def get_sentence_embedding_dimension(self) -> int: ...
    @property
    def info(self) -> dict[str, Any]: ...
    @property
    def path(self) -> str: ...
    @property
    def embedding_dim(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def max_seq_length(self) -> int: ...
    @property
    def precision(self) -> str: ...
    @property
    def labels(self) -> list[str]: ...
    @property
    def prompts(self) -> dict[str, str]: ...
    @property
    def default_prompt_name(self) -> str | None: ...
