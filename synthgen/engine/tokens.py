"""Token counting that works offline.

`embedded` (default): the embedded teacher's own vocabulary and BPE merges, read from its GGUF
file (SmolLM2, a GPT-2-style byte-level BPE) into a `tokenizers` BPE model. No download; the
result is cached as tokenizer JSON, so only the first use reads the 90 MB model file.
`hf:NAME`: any Hugging Face tokenizer, when the hub is reachable. `whitespace`: words, for
when neither is wanted. The choice is recorded in the mixture manifest."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from synthgen.config.errors import UserError
from synthgen.engine.userdirs import cache_dir

Counter = Callable[[list[str]], list[int]]


def counter(name: str) -> tuple[Counter, str]:
    """A batch token counter, and the description to record."""
    if name == "whitespace":
        return (lambda texts: [len(text.split()) for text in texts]), "whitespace words"
    if name == "embedded":
        return _batch(_local(name)), "smollm2-135m-instruct BPE (GGUF vocabulary of the embedded teacher)"
    if name.startswith("hf:"):
        return _batch(_local(name)), f"{name[3:]} (Hugging Face tokenizer)"
    raise UserError(f"unknown tokenizer {name!r}; valid: embedded, whitespace, hf:NAME")


def _local(name: str):
    """The `tokenizers` tokenizer for `embedded` or `hf:NAME`."""
    if name == "embedded":
        return _embedded()
    if not name.startswith("hf:"):
        raise UserError(f"unknown local tokenizer {name!r}; valid: embedded, hf:NAME")
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_pretrained(name[3:])
    except Exception as exc:  # noqa: BLE001 - offline or unknown: one clear message
        raise UserError(f"tokenizer {name}: cannot load it from the Hugging Face hub ({exc}); use 'embedded'") from None


def _batch(tokenizer) -> Counter:
    return lambda texts: [len(encoding.ids) for encoding in tokenizer.encode_batch(texts, add_special_tokens=False)]


def _embedded():
    from tokenizers import Tokenizer

    cached = cache_dir("tokenizers") / "smollm2-135m-instruct.tokenizer.json"
    if cached.is_file():
        return Tokenizer.from_file(str(cached))
    tokenizer = _from_gguf(_model_file())
    cached.parent.mkdir(parents=True, exist_ok=True)
    staging = cached.with_suffix(f".{os.getpid()}.tmp")
    tokenizer.save(str(staging))
    staging.replace(cached)
    return tokenizer


def _from_gguf(path: Path):
    import gguf
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    fields = gguf.GGUFReader(path).fields

    def strings(key: str) -> list[str]:
        field = fields[key]
        return [bytes(field.parts[index]).decode("utf-8") for index in field.data]

    tokens = strings("tokenizer.ggml.tokens")
    merges = [tuple(merge.split(" ", 1)) for merge in strings("tokenizer.ggml.merges")]
    tokenizer = Tokenizer(models.BPE(vocab={token: i for i, token in enumerate(tokens)}, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = [token for token in tokens if token.startswith("<") and token.endswith(">") and " " not in token]
    tokenizer.add_special_tokens([AddedToken(token, special=True) for token in specials])
    return tokenizer


def _model_file() -> Path:
    from synthgen.engine.embedded_teacher import model_path

    try:
        return Path(model_path())
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"tokenizer 'embedded' needs the embedded teacher's model: {exc}") from None


def splitter(name: str) -> Callable[[str], list[str]]:
    """A local tokenizer as a text splitter: the text cut at its token boundaries (the pieces
    join back to the text exactly). `embedded` or `hf:NAME`, as for `counter`."""
    tokenizer = _local(name)

    def split(text: str) -> list[str]:
        offsets = tokenizer.encode(text, add_special_tokens=False).offsets
        # Byte-level tokens inside one character share its offsets: cut only between characters.
        cuts = sorted({start for start, _ in offsets if 0 < start < len(text)})
        return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)]) if b > a]

    return split
