"""Judges that ask a chat model: an OpenAI-compatible endpoint, or a Hugging Face model in process.

Both use the prompt files in ``bench_judges/prompts/`` (``explainer.txt``, ``simulator.txt``;
``prompts_dir`` option to use others). The simulator is asked for one 0-10 number per token
as a JSON list; a reply that cannot be parsed counts as all zeros for that window (and is
counted, so a judge that cannot follow the format is visible).

The HTTP client is urllib rather than the `openai` package: the chat-completions wire
format is small, and one request shape serves vLLM, llama.cpp, Ollama and hosted APIs alike
without another dependency.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.io import write_json_atomic
from bench.paths import cache_dir
from bench.tasks.interpretability.judges import Example, Judge

Complete = Callable[[list[dict[str, str]]], str]
_NUMBERS = re.compile(r"\[[^\[\]]*\]", re.S)


class ChatJudge(Judge):
    def __init__(self, complete: Complete, prompts_dir: Path, identity: dict[str, Any]):
        self.complete = complete
        self.identity = identity
        self.unparsed = 0
        try:
            self.explainer = (prompts_dir / "explainer.txt").read_text(encoding="utf-8")
            self.simulator = (prompts_dir / "simulator.txt").read_text(encoding="utf-8")
        except OSError as err:
            raise BenchError(f"judge prompts missing in {prompts_dir}: {err}") from err

    def describe(self) -> dict[str, Any]:
        return {**self.identity, "unparsed_simulations": self.unparsed}

    def explain(self, examples: Sequence[Example]) -> str:
        top = max((max(ex.activations) for ex in examples), default=1.0) or 1.0
        lines = []
        for ex in examples:
            peak = max(range(len(ex.tokens)), key=ex.activations.__getitem__)
            text = "".join(ex.tokens[:peak]) + f"<<{ex.tokens[peak]}>>" + "".join(ex.tokens[peak + 1 :])
            lines.append(f"- {text.strip()}  ({round(10 * ex.activations[peak] / top)})")
        prompt = self.explainer.format(examples="\n".join(lines))
        return self.complete([{"role": "user", "content": prompt}]).strip()

    def simulate(self, explanation: str, windows: Sequence[Sequence[str]]) -> list[list[float]]:
        out = []
        for window in windows:
            prompt = self.simulator.format(explanation=explanation, n=len(window), tokens=json.dumps(list(window)))
            out.append(self._parse(self.complete([{"role": "user", "content": prompt}]), len(window)))
        return out

    def _parse(self, reply: str, n: int) -> list[float]:
        for match in _NUMBERS.finditer(reply):
            try:
                values = [float(v) for v in json.loads(match.group(0))]
            except (ValueError, TypeError):
                continue
            if len(values) == n:
                return values
        self.unparsed += 1
        return [0.0] * n


class OpenAICompatible:
    """POST {base_url}/chat/completions with retries, a timeout, and an on-disk response cache."""

    def __init__(self, base_url: str, model: str, api_key: str | None, timeout: float, retries: int, max_tokens: int):
        self.base_url, self.model, self.api_key = base_url.rstrip("/"), model, api_key
        self.timeout, self.retries, self.max_tokens = timeout, retries, max_tokens
        self.cache = cache_dir() / "judge_responses"

    def __call__(self, messages: list[dict[str, str]]) -> str:
        body = {"model": self.model, "messages": messages, "temperature": 0, "max_tokens": self.max_tokens}
        key = hashlib.sha256(json.dumps([self.base_url, body], sort_keys=True).encode()).hexdigest()
        cached = self.cache / key[:2] / f"{key}.json"
        if cached.exists():
            return json.loads(cached.read_text(encoding="utf-8"))["content"]
        content = self._post(body)
        write_json_atomic(cached, {"content": content})
        return content

    def _post(self, body: dict[str, Any]) -> str:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            f"{self.base_url}/chat/completions", json.dumps(body).encode(), headers, method="POST"
        )
        for attempt in range(self.retries + 1):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read())["choices"][0]["message"]["content"]
            except urllib.error.HTTPError as err:
                if err.code not in (408, 429, 500, 502, 503, 504) or attempt == self.retries:
                    raise BenchError(
                        f"judge endpoint {self.base_url} answered HTTP {err.code}: {err.read()[:200]!r}"
                    ) from err
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                if attempt == self.retries:
                    raise BenchError(
                        f"judge endpoint {self.base_url} unreachable after {self.retries + 1} tries ({err}); "
                        "set base_url (or $OPENAI_BASE_URL) to a running OpenAI-compatible server."
                    ) from err
            time.sleep(min(2**attempt, 30) * 0.5)
        raise AssertionError("unreachable")


class InProcess:
    """Greedy generation with a Hugging Face instruct model's chat template."""

    def __init__(self, model_id: str, max_tokens: int, device: str):
        from bench.model.loading import load_model

        self.loaded = load_model(model_id, device)
        self.max_tokens = max_tokens

    def __call__(self, messages: list[dict[str, str]]) -> str:
        import torch

        tokenizer, model = self.loaded.tokenizer, self.loaded.model
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        ids = {k: v.to(self.loaded.device) for k, v in ids.items()}
        with torch.no_grad():
            out = model.generate(
                **ids, max_new_tokens=self.max_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


def _prompts(options: Mapping[str, Any]) -> Path:
    if "prompts_dir" in options:
        return Path(options["prompts_dir"])
    with as_file(files("bench_judges") / "prompts") as folder:  # shipped with this package
        return Path(folder)


def _check(name: str, options: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = set(options) - allowed
    if unknown:
        raise BenchError(f"judge {name} takes the options {sorted(allowed)}, not {sorted(unknown)}.")


def openai_judge(options: Mapping[str, Any]) -> Judge:
    _check("openai", options, {"base_url", "model", "api_key", "timeout", "retries", "max_tokens", "prompts_dir"})
    base_url = options.get("base_url") or os.environ.get("OPENAI_BASE_URL")
    model = options.get("model") or os.environ.get("LENS_BENCH_JUDGE_MODEL")
    if not base_url or not model:
        raise BenchError(
            "the openai judge needs base_url and model: judge options in the task YAML, "
            "or $OPENAI_BASE_URL and $LENS_BENCH_JUDGE_MODEL."
        )
    client = OpenAICompatible(
        base_url,
        model,
        options.get("api_key") or os.environ.get("OPENAI_API_KEY"),
        float(options.get("timeout", 60)),
        int(options.get("retries", 3)),
        int(options.get("max_tokens", 256)),
    )
    return ChatJudge(client, _prompts(options), {"base_url": base_url, "model": model})


def hf_judge(options: Mapping[str, Any]) -> Judge:
    from bench.model.loading import DEFAULT_MODEL

    _check("hf", options, {"model", "max_tokens", "device", "prompts_dir"})
    model = str(options.get("model", DEFAULT_MODEL))
    client = InProcess(model, int(options.get("max_tokens", 128)), str(options.get("device", "cpu")))
    return ChatJudge(client, _prompts(options), {"model": model})
