"""The OpenAI-compatible judge against a local HTTP server, and the in-process HF judge."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from transformers import AutoTokenizer

from bench.errors import BenchError
from bench.plugin.registry import plugins
from bench.tasks.interpretability.judges import Example


class FakeChatServer(BaseHTTPRequestHandler):
    """Explains 'Paris'; simulates 10 on the token 'Paris' and 0 elsewhere. The first request fails with 503."""

    requests: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeChatServer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if len(FakeChatServer.requests) == 1:
            self.send_response(503)
            self.end_headers()
            return
        prompt = body["messages"][-1]["content"]
        if "In one short phrase" in prompt:
            content = "the word Paris"
        else:
            tokens = json.loads(next(line for line in prompt.splitlines() if line.startswith("[")))
            content = "Sure: " + json.dumps([10 if t.strip() == "Paris" else 0 for t in tokens])
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def chat_server():
    FakeChatServer.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeChatServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


EXAMPLES = [Example(("I", " saw", " Paris"), (0.0, 0.1, 4.0)), Example(("Paris", " is"), (3.0, 0.0))]
WINDOWS = [("I", " love", " Paris"), ("a", " dog")]


def test_openai_judge_contract_retry_auth_and_cache(chat_server) -> None:
    judge = (
        plugins()
        .judges.get("openai")
        .build({"base_url": chat_server, "model": "tiny-judge", "api_key": "sk-test", "retries": 2})
    )
    explanation = judge.explain(EXAMPLES)
    assert explanation == "the word Paris"
    assert judge.simulate(explanation, WINDOWS) == [[0, 0, 10], [0, 0]]
    first = FakeChatServer.requests
    assert len(first) == 1 + 1 + 2  # a 503 retried, one explanation, one simulation per window
    assert {r["path"] for r in first} == {"/v1/chat/completions"}
    assert {r["auth"] for r in first} == {"Bearer sk-test"}
    assert first[1]["body"]["model"] == "tiny-judge" and first[1]["body"]["temperature"] == 0
    assert "<<Paris>>" in first[1]["body"]["messages"][0]["content"]
    # A rerun is served from the response cache: no new request.
    again = plugins().judges.get("openai").build({"base_url": chat_server, "model": "tiny-judge", "api_key": "sk-test"})
    assert again.simulate(again.explain(EXAMPLES), WINDOWS) == [[0, 0, 10], [0, 0]]
    assert len(FakeChatServer.requests) == 4
    assert judge.describe() == {"base_url": chat_server, "model": "tiny-judge", "unparsed_simulations": 0}


def test_openai_judge_errors_are_clear(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(BenchError, match="needs base_url and model"):
        plugins().judges.get("openai").build({"model": "m"})
    judge = (
        plugins()
        .judges.get("openai")
        .build({"base_url": "http://127.0.0.1:9/v1", "model": "m", "retries": 0, "timeout": 2})
    )
    with pytest.raises(BenchError, match="unreachable after 1 tries"):
        judge.explain(EXAMPLES)


def test_interpretability_with_the_openai_judge(chat_server, planted_llama, corpus_dir, tmp_path) -> None:
    from tests.test_interpretability import run_is

    monkeypatch_env = {"OPENAI_BASE_URL": chat_server, "LENS_BENCH_JUDGE_MODEL": "tiny-judge"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in monkeypatch_env.items():
            mp.setenv(key, value)
        FakeChatServer.requests = [{}]  # no failing first request this time
        result = run_is(planted_llama, "openai", corpus_dir, tmp_path)
    by_unit = {item["id"]: item["is"] for item in result["items"]}
    assert by_unit["0"] > 0.95
    assert result["judge"]["model"] == "tiny-judge"


def test_hf_judge_contract(tiny_model_dirs, tmp_path) -> None:
    folder = tmp_path / "chat-model"
    shutil.copytree(tiny_model_dirs["llama"], folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    tokenizer.save_pretrained(folder)
    judge = plugins().judges.get("hf").build({"model": str(folder), "max_tokens": 4})
    explanation = judge.explain(EXAMPLES)
    assert isinstance(explanation, str)
    predicted = judge.simulate(explanation, WINDOWS)
    assert [len(p) for p in predicted] == [3, 2]
    # a random model cannot answer in the format: that is counted, and scored as all zeros
    assert judge.describe()["unparsed_simulations"] == 2 and predicted == [[0.0] * 3, [0.0] * 2]
