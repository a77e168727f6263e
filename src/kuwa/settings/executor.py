"""Settings of an executor: what it serves, its backend and its model engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kuwa.settings.values import doc


@dataclass(frozen=True)
class ExecutorSettings:
    """An executor, its backends (debug, openai) and its engine (vllm, transformers)."""

    __slots__ = ()  # Settings holds the fields in slots of its own
    # --- executor -----------------------------------------------------------------------
    access_code: tuple[str, ...] = field(
        default=(),
        metadata=doc("Access codes an executor serves (comma-separated in the environment)."),
    )
    backend: str | None = field(
        default=None,
        metadata=doc(
            "Executor backend: vllm, transformers, embeddings (an embedding model for "
            "/v1/embeddings and document retrieval), openai, debug or any entry point in "
            "kuwa.executors. Unset: vllm when a model is given and vLLM and a GPU are present, "
            "transformers when a model is given otherwise, debug without a model."
        ),
    )
    max_concurrency: int = field(
        default=16, metadata=doc("Jobs one executor runs at once (its slots).")
    )
    executor_name: str | None = field(
        default=None, metadata=doc("Name an executor registers under (default: host-pid).")
    )
    drain_timeout: float = field(
        default=30.0,
        metadata=doc("Seconds an executor waits for running jobs after SIGTERM."),
    )
    debug_delay: float = field(
        default=0.0, metadata=doc("Debug backend: seconds to wait before each token.")
    )
    debug_transform: str = field(
        default="echo",
        metadata=doc(
            "Debug backend: echo, reverse or upper (applied to the last user message), "
            "history (the whole conversation), or embed (an embedding model of hashed words)."
        ),
    )
    system_prompt: str | None = field(
        default=None, metadata=doc("Executor: system prompt for every job (like SYSTEM).")
    )
    modelfile: Path | None = field(
        default=None,
        metadata=doc("Executor: the model's Modelfile (SYSTEM, PARAMETER, MESSAGE, TEMPLATE, …)."),
    )
    rules: Path | None = field(
        default=None,
        metadata=doc(
            "Executor: rule file (YAML or TOML): input/output filters, bounds, trimming "
            "(docs/rules.md)."
        ),
    )
    upstream_base_url: str | None = field(
        default=None,
        metadata=doc(
            "openai backend: base URL of an OpenAI-compatible API up to /v1, e.g. "
            "https://api.openai.com/v1, http://127.0.0.1:11434/v1 (Ollama) or another "
            "Kuwa gateway's /v1. HTTP(S)_PROXY, NO_PROXY and ~/.netrc (a login, used "
            "without an API key) apply; they are read when the executor starts."
        ),
    )
    upstream_api_key: str | None = field(
        default=None,
        repr=False,
        metadata=doc(
            "openai backend: API key sent to the upstream as a Bearer token; never logged. "
            "Prefer this variable to --api-key, which other users can see in the process list."
        ),
    )
    upstream_model: str | None = field(
        default=None,
        metadata=doc("openai backend: the upstream's model name (default: --model)."),
    )
    upstream_timeout: float = field(
        default=60.0,
        metadata=doc(
            "openai backend: seconds to wait for the upstream to connect, and for each next "
            "piece of an answer."
        ),
    )
    # --- model engines (vllm backend) -------------------------------------------------------
    model: str | None = field(
        default=None, metadata=doc("Model an executor serves: a Hugging Face id or a path.")
    )
    gpu_memory_utilization: float | None = field(
        default=None,
        metadata=doc(
            "vLLM: fraction of GPU memory the engine may use (on its CPU build: of the RAM, "
            "weights included, unless kv_cache_gib is set)."
        ),
    )
    tensor_parallel_size: int | None = field(
        default=None, metadata=doc("vLLM: GPUs to split the model over.")
    )
    max_model_len: int | None = field(
        default=None, metadata=doc("Context window in tokens (default: the model's own).")
    )
    dtype: str | None = field(
        default=None, metadata=doc("Weights dtype: auto, bfloat16, float16, float32.")
    )
    quantization: str | None = field(
        default=None, metadata=doc("vLLM quantization method (awq, gptq, fp8, ...).")
    )
    trust_remote_code: bool = field(
        default=False, metadata=doc("Allow the model repository's own Python code to run.")
    )
    load_format: str | None = field(
        default=None,
        metadata=doc("vLLM load format; 'dummy' gives random weights (benchmarks, tests)."),
    )
    enforce_eager: bool | None = field(
        default=None,
        metadata=doc(
            "vLLM: run the model eagerly, without CUDA graphs or compilation (faster start). "
            "Default: on for vLLM's CPU build, off on GPUs."
        ),
    )
    kv_cache_gib: float | None = field(
        default=None,
        metadata=doc(
            "vLLM: memory for the KV cache in GiB. Default on vLLM's CPU build: 4, or a "
            "quarter of the free RAM if less; on GPUs, what gpu_memory_utilization leaves."
        ),
    )
