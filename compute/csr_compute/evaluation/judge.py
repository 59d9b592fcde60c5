"""An LLM judge reached through an OpenAI-compatible chat-completions endpoint (MM-Vet, LLaVA-Bench, MMBench).

Configured by URL and model name (and the name of an environment variable holding the API key, if the
endpoint wants one). Verdicts can be kept in a JSON-lines file so that a retried step does not ask twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..contract import JsonlStore, RetryableError, SpecError

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


# The operator's allowlist of key variables a judge spec may name (comma or space separated).
JUDGE_KEY_ENVS = "CSR_JUDGE_KEY_ENVS"


@dataclass
class Judge:
    url: str  # the endpoint's base URL (…/v1) or its full …/chat/completions URL
    model: str
    api_key_env: str | None = None
    cache: JsonlStore | None = None
    timeout_s: float = 120.0
    attempts: int = 5

    @classmethod
    def from_spec(cls, spec: Any, field_path: str = "judge") -> "Judge":
        if not isinstance(spec, dict):
            raise SpecError(field_path, spec, "an object {url, model, api_key_env?}")
        for key in spec:
            if key not in ("url", "model", "api_key_env"):
                raise SpecError(f"{field_path}.{key}", spec[key], "no such field (url, model, api_key_env)")
        url, model, key_env = spec.get("url"), spec.get("model"), spec.get("api_key_env")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise SpecError(f"{field_path}.url", url, "an http(s) URL of an OpenAI-compatible endpoint")
        if not isinstance(model, str) or not model:
            raise SpecError(f"{field_path}.model", model, "the judge model's name")
        if key_env is not None:
            # The key is sent to ``url``: only variables the operator listed may be named, or a spec could
            # send any secret of this worker's environment anywhere (same rule as the TypeScript side).
            allowed = [name for name in re.split(r"[\s,]+", os.environ.get(JUDGE_KEY_ENVS, "")) if name]
            if not isinstance(key_env, str) or key_env not in allowed:
                raise SpecError(f"{field_path}.api_key_env", key_env,
                                f"one of {', '.join(allowed)}" if allowed else f"a variable listed in {JUDGE_KEY_ENVS} (empty here)")
            if key_env not in os.environ:
                raise SpecError(f"{field_path}.api_key_env", key_env, "the name of a set environment variable")
        return cls(url=url, model=model, api_key_env=key_env)

    def with_cache(self, path: Path) -> "Judge":
        return Judge(self.url, self.model, self.api_key_env, JsonlStore(path, key="key"), self.timeout_s, self.attempts)

    @property
    def endpoint(self) -> str:
        base = self.url.rstrip("/")
        return base if base.endswith("/chat/completions") else base + "/chat/completions"

    def complete(self, prompt: str, *, temperature: float, max_tokens: int, system: str | None = None,
                 attempt: int = 0) -> str:
        """The judge's reply to one user message; ``attempt`` tells repeated identical requests apart."""
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        payload = {"model": self.model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens}
        key = hashlib.sha256(json.dumps([payload, attempt], sort_keys=True).encode()).hexdigest()
        if self.cache is not None and key in self.cache:
            return self.cache.get(key)["content"]
        content = self._post(payload)
        if self.cache is not None:
            self.cache.append({"key": key, "model": self.model, "content": content})
        return content

    def _post(self, payload: dict[str, Any]) -> str:
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            headers["Authorization"] = f"Bearer {os.environ[self.api_key_env]}"
        body = json.dumps(payload).encode()
        last_error = ""
        for attempt in range(self.attempts):
            request = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    reply = json.loads(response.read())
                return reply["choices"][0]["message"]["content"] or ""
            except urllib.error.HTTPError as error:
                detail = error.read()[:300].decode(errors="replace")
                if error.code not in RETRYABLE_STATUS:
                    raise SpecError("judge", {"url": self.endpoint, "model": self.model},
                                    f"a judge that accepts the request (HTTP {error.code}: {detail})") from None
                last_error = f"HTTP {error.code}: {detail}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                last_error = str(getattr(error, "reason", error))
            except (KeyError, IndexError, TypeError, json.JSONDecodeError) as error:
                last_error = f"not a chat-completions reply ({error!r})"
            if attempt + 1 < self.attempts:
                time.sleep(min(2 ** attempt, 30))
        raise RetryableError(f"judge {self.endpoint} (model {self.model}) failed {self.attempts} times: {last_error}")
