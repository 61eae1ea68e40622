"""Writes the tiny llama GGUF that the test rig serves: random weights, a real tokenizer, ChatML.

The model is nonsense by design. What it guarantees is that llama.cpp loads it like a real one and
that every completion runs to `max_tokens` with printable text, so lengths are predictable.

    python -m tests.llm.tiny_gguf OUT.gguf [--seed N]
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ("CHAT_TEMPLATE", "SPECIAL_TOKENS", "make_tiny_model")

N_LAYER = 2
N_EMBD = 64
N_HEAD = 4
N_FF = 128
N_CTX_TRAIN = 1024
N_MERGES = 116
# bos/pad first, then the two ChatML markers; <|im_end|> is the eos a chat turn ends with.
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# The merges are learnt from this text, so the vocabulary looks like a real English BPE one.
_CORPUS = """\
Gate is a node runner for a private peer to peer network of machines that share their compute.
Each node reads the spec from its file, plans what should run, and then starts the components
that are missing and stops the ones that are not wanted any more. The planner is pure: it takes
the desired state and the actual state and returns the actions, so the tests can check it with a
table of cases. The providers answer chat completions for the models that the node serves, and
the peers find each other on the network and send their requests through the relay when they
cannot reach one another directly. The control plane is where the operator sees the status of
the node, the health of the providers, the latency of the peers and the errors that need a fix.
"""


def _byte_tokens() -> list[str]:
    """GPT-2's byte-to-unicode map, in byte order: token id b is the text of byte b."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    text: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in text:
            text[b] = chr(256 + extra)
            extra += 1
    return [text[b] for b in range(256)]


def _learn_merges(byte_tokens: list[str], n_merges: int) -> list[tuple[str, str]]:
    """A minimal BPE trainer: merge the most frequent pair, ties broken by the pair's text."""
    words = Counter(re.findall(r" ?\w+| ?[^\w\s]+|\s+", _CORPUS))
    seqs = {w: [byte_tokens[b] for b in w.encode()] for w in words}
    merges: list[tuple[str, str]] = []
    while len(merges) < n_merges:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, seq in seqs.items():
            for pair in zip(seq, seq[1:], strict=False):
                pairs[pair] += words[word]
        if not pairs:
            raise ValueError(f"the corpus yields only {len(merges)} merges, not {n_merges}")
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        for word, seq in seqs.items():
            out: list[str] = []
            i = 0
            while i < len(seq):
                if i + 1 < len(seq) and (seq[i], seq[i + 1]) == best:
                    out.append(seq[i] + seq[i + 1])
                    i += 2
                else:
                    out.append(seq[i])
                    i += 1
            seqs[word] = out
    return merges


def _weights(n_vocab: int, preferred: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    import numpy as np

    rng = np.random.default_rng(seed)

    def normal(std: float, *shape: int) -> np.ndarray:
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    # Dimension 0 of every embedding is a constant 1, and the layers are too weak to move it, so
    # after the final RMS norm it is a large positive input to every logit. Column 0 of the
    # output matrix then acts as a per-token bias: up for printable ASCII and merges, well down
    # for control bytes, broken UTF-8 and the special tokens (so never EOS before max_tokens).
    embd = normal(0.2, n_vocab, N_EMBD)
    embd[:, 0] = 1.0
    output = normal(0.2, n_vocab, N_EMBD)
    output[:, 0] = np.where(preferred, 2.0, -4.0)
    tensors = {
        "token_embd.weight": embd,
        "output_norm.weight": np.ones(N_EMBD, dtype=np.float32),
        "output.weight": output,
    }
    for i in range(N_LAYER):
        blk = f"blk.{i}"
        tensors |= {
            f"{blk}.attn_norm.weight": np.ones(N_EMBD, dtype=np.float32),
            f"{blk}.attn_q.weight": normal(0.02, N_EMBD, N_EMBD),
            f"{blk}.attn_k.weight": normal(0.02, N_EMBD, N_EMBD),
            f"{blk}.attn_v.weight": normal(0.02, N_EMBD, N_EMBD),
            f"{blk}.attn_output.weight": normal(0.02, N_EMBD, N_EMBD),
            f"{blk}.ffn_norm.weight": np.ones(N_EMBD, dtype=np.float32),
            f"{blk}.ffn_gate.weight": normal(0.02, N_FF, N_EMBD),
            f"{blk}.ffn_up.weight": normal(0.02, N_FF, N_EMBD),
            f"{blk}.ffn_down.weight": normal(0.02, N_EMBD, N_FF),
        }
    return tensors


def make_tiny_model(path: Path, *, seed: int = 0) -> Path:
    """Write the tiny model to `path` (about 0.5 MB, the same bytes for the same seed)."""
    # Imported here so that tests.llm.engine, which imports this module, loads as a pytest plugin
    # in a venv without them (its fixtures then skip). scripts/llama-wheel.sh installs both.
    import gguf
    import numpy as np

    byte_tokens = _byte_tokens()
    merges = _learn_merges(byte_tokens, N_MERGES)
    tokens = [*byte_tokens, *(a + b for a, b in merges), *SPECIAL_TOKENS]
    if len(set(tokens)) != len(tokens):
        raise AssertionError("the vocabulary has duplicate tokens")
    n_vocab = len(tokens)
    n_special = len(SPECIAL_TOKENS)
    token_types = [gguf.TokenType.NORMAL] * (n_vocab - n_special) + [
        gguf.TokenType.CONTROL
    ] * n_special
    ids = {t: i for i, t in enumerate(tokens)}

    preferred = np.zeros(n_vocab, dtype=bool)
    preferred[0x20:0x7F] = True
    preferred[256 : n_vocab - n_special] = True

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed, so a reader (or a cache check) never sees half a file.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer = gguf.GGUFWriter(tmp_name, "llama")
        writer.add_name("gate-tiny")
        writer.add_context_length(N_CTX_TRAIN)
        writer.add_embedding_length(N_EMBD)
        writer.add_block_count(N_LAYER)
        writer.add_feed_forward_length(N_FF)
        writer.add_head_count(N_HEAD)
        writer.add_head_count_kv(N_HEAD)
        writer.add_rope_dimension_count(N_EMBD // N_HEAD)
        writer.add_rope_freq_base(10000.0)
        writer.add_layer_norm_rms_eps(1e-5)
        writer.add_vocab_size(n_vocab)
        writer.add_file_type(gguf.LlamaFileType.ALL_F32)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("gpt-2")
        writer.add_token_list(tokens)
        writer.add_token_types(token_types)
        writer.add_token_merges([f"{a} {b}" for a, b in merges])
        writer.add_bos_token_id(ids["<|endoftext|>"])
        writer.add_eos_token_id(ids["<|im_end|>"])
        writer.add_pad_token_id(ids["<|endoftext|>"])
        writer.add_add_bos_token(False)
        writer.add_chat_template(CHAT_TEMPLATE)
        # Without a pooling type llama.cpp embeds per token, which /v1/embeddings cannot return;
        # it only applies when a context is opened with embeddings on.
        writer.add_pooling_type(gguf.PoolingType.MEAN)
        for name, tensor in _weights(n_vocab, preferred, seed).items():
            writer.add_tensor(name, tensor)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.chmod(tmp_name, 0o644)  # mkstemp makes it 0600
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the tests' tiny llama GGUF model.")
    parser.add_argument("out", type=Path, help="where to write the .gguf file")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    args = parser.parse_args(argv)
    out = make_tiny_model(args.out, seed=args.seed)
    print(f"{out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
