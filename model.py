"""
GPT-2 in one file, with Hugging Face parameter names so that the released GPT-2 weights load as they
are.

The one addition to the textbook model is `n_inner`, the width of the MLP: the paper varies it alone
(64, 256, 1024, 4096 at 12 layers x 768) to show that a narrower model condenses more. Everything
else is GPT-2: pre-norm blocks, learned positions, tanh-approximated GELU, LayerNorm eps 1e-5, tied
input/output embeddings.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class GPTConfig:
    block_size: int = 1024  # longest context (number of learned positions)
    # GPT-2's 50257 padded up to a multiple of 64 for faster matmuls; the extra rows are never a
    # target, but they still get logits, so sampling must mask them (generate's n_vocab) and exports
    # may drop them
    vocab_size: int = 50304
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    n_inner: int | None = None  # MLP hidden width; None means 4 * n_embd, as in GPT-2
    dropout: float = 0.0
    # biases in Linear and LayerNorm, as in GPT-2; False is a little faster and no worse
    bias: bool = True

    def __post_init__(self):
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if self.n_inner is not None and self.n_inner < 1:
            raise ValueError(f"n_inner must be a positive integer or None, got {self.n_inner}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def layer_norm(ndim, bias):
    """GPT-2's LayerNorm (eps 1e-5), with or without a bias; its parameters are named weight and
    bias, as in Hugging Face's checkpoints."""
    return nn.LayerNorm(ndim, eps=1e-5, bias=bias)


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        # q, k, v in one matmul
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        # (B, nh, T, hs)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        # softmax(q k^T / sqrt(hs)) v with a causal mask; the fused kernel never materialises the
        # T x T matrix
        y = F.scaled_dot_product_attention(q, k, v,
                                           dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        n_inner = config.n_inner or 4 * config.n_embd
        self.c_fc = nn.Linear(config.n_embd, n_inner, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2's "gelu_new"
        self.c_proj = nn.Linear(n_inner, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = layer_norm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = layer_norm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=layer_norm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # weight tying, as in GPT-2
        self.apply(self._init_weights)
        # GPT-2's scaled init: each block adds two residual branches, so their output projections
        # start smaller (std / sqrt(2 * n_layer)) and the residual stream's variance does not grow
        # with depth
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding=False):
        """Parameters, counting the tied embedding once; non_embedding drops token and position
        embeddings."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wte.weight.numel() + self.transformer.wpe.weight.numel()
        return n

    def forward(self, idx, targets=None, return_hidden=False, head=True):
        """-> (logits, loss) or, with return_hidden, (logits, loss, hidden); head=False skips the
        output layer (logits and loss are None), for measurements that need only the hidden
        states."""
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence of length {T} is longer than block_size "
                             f"{self.config.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        # hidden states follow Hugging Face's output_hidden_states: n_layer + 1 tensors [B, T, C],
        # the embedding output, then each block's output, with the final LayerNorm applied to the
        # last one
        hidden = [x]
        for block in self.transformer.h:
            x = block(x)
            hidden.append(x)
        x = self.transformer.ln_f(x)
        hidden[-1] = x
        if not head:
            return (None, None, hidden) if return_hidden else (None, None)
        logits = self.lm_head(x)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1),
                                   ignore_index=-1)
        return (logits, loss, hidden) if return_hidden else (logits, loss)

    def flops_per_token(self, T):
        """Training FLOPs per token (forward + backward): 6 per weight used in a matmul (the tied
        embedding is one, as the output layer; the position table is a lookup) plus attention's two
        T-long matmuls per layer."""
        cfg = self.config
        n_matmul = self.num_params(non_embedding=True) + self.transformer.wte.weight.numel()
        return 6 * n_matmul + 12 * cfg.n_layer * cfg.n_embd * T

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, n_vocab=None):
        """Sample max_new_tokens tokens after idx (B, T), feeding back the last block_size tokens
        each step. n_vocab: the tokenizer's size; the padded rows past it get probability 0, as no
        tokenizer can decode them. top_k keeps the k likeliest tokens (and any tied with the k-th);
        top_k=1 is greedy decoding."""
        for _ in range(max_new_tokens):
            # only the last position's logits are needed: the output layer runs on it alone, which
            # for a 50k vocabulary is most of a small model's work
            _, _, hidden = self(idx[:, -self.config.block_size:], return_hidden=True, head=False)
            logits = self.lm_head(hidden[-1][:, -1, :])[:, :n_vocab].float() / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("inf")
            # slicing to n_vocab leaves ids 0 .. n_vocab - 1, so the sampled index is the token id
            # as it is
            idx = torch.cat((idx, torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)),
                            dim=1)
        return idx

    # ------------------------------------------------------------------ trained weights

    @classmethod
    def from_checkpoint(cls, ckpt):
        """The model in one of train.py's checkpoints, given as the loaded dict (support/load.py
        reads the file)."""
        model = cls(GPTConfig(**ckpt["model_args"]))
        model.load_state_dict(ckpt["model"])
        return model

    @classmethod
    def from_pretrained(cls, hf_config, hf_sd, dropout=0.0):
        """GPT-2 from Hugging Face's config.json (a dict) and state dict (support/hub.py reads both,
        from a folder, the hub's cache or the hub): their names map to ours, and their Conv1D
        weights are transposed."""
        if hf_config.get("model_type", "gpt2") != "gpt2":
            raise ValueError(f"a {hf_config.get('model_type')} model, not GPT-2: measure it as "
                             "hf:<name>")
        act = hf_config.get("activation_function", "gelu_new")
        if (act not in ("gelu_new", "gelu_pytorch_tanh")
                or hf_config.get("layer_norm_epsilon", 1e-5) != 1e-5):
            raise ValueError("only GPT-2's tanh GELU and LayerNorm eps 1e-5 are supported")
        config = GPTConfig(block_size=hf_config["n_positions"], vocab_size=hf_config["vocab_size"],
                           n_layer=hf_config["n_layer"], n_head=hf_config["n_head"],
                           n_embd=hf_config["n_embd"], n_inner=hf_config.get("n_inner"),
                           dropout=dropout, bias=True)
        model = cls(config)
        sd = model.state_dict()
        # checkpoints saved from GPT2Model lack the "transformer." prefix; the causal-mask buffers
        # are not weights
        hf_sd = {k if k.startswith(("transformer.", "lm_head.")) else "transformer." + k: v
                 for k, v in hf_sd.items()}
        hf_sd = {k: v for k, v in hf_sd.items()
                 if not k.endswith((".attn.bias", ".attn.masked_bias"))}
        hf_sd.setdefault("lm_head.weight", hf_sd["transformer.wte.weight"])
        missing = sorted(set(sd) - set(hf_sd))
        if missing:
            raise ValueError(f"weights missing for {missing[:5]}")
        # Hugging Face's GPT-2 uses Conv1D layers, which store their weight as (in, out): transposed
        # to Linear's
        conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight",
                  "mlp.c_proj.weight")
        with torch.no_grad():
            for k, v in sd.items():
                w = hf_sd[k].float()
                v.copy_(w.t() if k.endswith(conv1d) else w)
        return model
