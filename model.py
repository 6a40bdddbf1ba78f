"""
GPT-2 in one file, with Hugging Face parameter names so that the released GPT-2 weights load as they are.

The one addition to the textbook model is `n_inner`, the width of the MLP: the paper varies it alone (64, 256,
1024, 4096 at 12 layers x 768) to show that a narrower model condenses more. Everything else is GPT-2:
pre-norm blocks, learned positions, tanh-approximated GELU, LayerNorm eps 1e-5, tied input/output embeddings.
"""

import json
import math
import mmap
import os
import pickle
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class GPTConfig:
    block_size: int = 1024  # longest context (number of learned positions)
    vocab_size: int = 50304  # GPT-2's 50257 padded up to a multiple of 64: faster matmuls, the extra rows never used
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    n_inner: int | None = None  # MLP hidden width; None means 4 * n_embd, as in GPT-2
    dropout: float = 0.0
    bias: bool = True  # biases in Linear and LayerNorm, as in GPT-2; False is a little faster and no worse

    def __post_init__(self):
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.n_inner is not None and self.n_inner < 1:
            raise ValueError(f"n_inner must be a positive integer or None, got {self.n_inner}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def layer_norm(ndim, bias):
    """GPT-2's LayerNorm (eps 1e-5), with or without a bias; its parameters are named weight and bias, as in
    Hugging Face's checkpoints."""
    return nn.LayerNorm(ndim, eps=1e-5, bias=bias)


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        # softmax(q k^T / sqrt(hs)) v with a causal mask; the fused kernel never materialises the T x T matrix
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
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
        # GPT-2's scaled init: each block adds two residual branches, so their output projections start smaller
        # (std / sqrt(2 * n_layer)) and the residual stream's variance does not grow with depth
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
        """Parameters, counting the tied embedding once; non_embedding drops token and position embeddings."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wte.weight.numel() + self.transformer.wpe.weight.numel()
        return n

    def forward(self, idx, targets=None, return_hidden=False, head=True):
        """-> (logits, loss) or, with return_hidden, (logits, loss, hidden); head=False skips the output layer
        (logits and loss are None), for measurements that need only the hidden states."""
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence of length {T} is longer than block_size {self.config.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        # hidden states follow Hugging Face's output_hidden_states: n_layer + 1 tensors [B, T, C], the embedding
        # output, then each block's output, with the final LayerNorm applied to the last one
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
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return (logits, loss, hidden) if return_hidden else (logits, loss)

    def flops_per_token(self, T):
        """Training FLOPs per token (forward + backward): 6 per weight used in a matmul (the tied embedding is one,
        as the output layer; the position table is a lookup) plus attention's two T-long matmuls per layer."""
        cfg = self.config
        n_matmul = self.num_params(non_embedding=True) + self.transformer.wte.weight.numel()
        return 6 * n_matmul + 12 * cfg.n_layer * cfg.n_embd * T

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        """Sample max_new_tokens tokens after idx (B, T), feeding back the last block_size tokens each step."""
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.config.block_size:])
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("inf")
            idx = torch.cat((idx, torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)), dim=1)
        return idx

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_checkpoint(cls, ckpt, map_location="cpu"):
        """Build the model stored in one of train.py's checkpoints (a path or an already loaded dict)."""
        if not isinstance(ckpt, dict):
            ckpt = load_checkpoint(ckpt, map_location)
        model = cls(GPTConfig(**ckpt["model_args"]))
        model.load_state_dict(plain_state_dict(ckpt["model"]))
        return model

    @classmethod
    def from_pretrained(cls, name_or_dir, dropout=0.0):
        """Load GPT-2 weights (gpt2, gpt2-medium, gpt2-large, gpt2-xl or any GPT2LMHeadModel checkpoint) from a
        directory with config.json and model.safetensors or pytorch_model.bin (one file or shards), or from the
        Hugging Face cache."""
        folder = find_pretrained(name_or_dir)
        with open(os.path.join(folder, "config.json")) as f:
            hf = json.load(f)
        if hf.get("model_type", "gpt2") != "gpt2":
            raise ValueError(f"{folder} holds a {hf.get('model_type')} model, not GPT-2: use measure.py's hf: path")
        act = hf.get("activation_function", "gelu_new")
        if act not in ("gelu_new", "gelu_pytorch_tanh") or hf.get("layer_norm_epsilon", 1e-5) != 1e-5:
            raise ValueError(f"{folder}: only GPT-2's tanh GELU and LayerNorm eps 1e-5 are supported")
        config = GPTConfig(block_size=hf["n_positions"], vocab_size=hf["vocab_size"], n_layer=hf["n_layer"],
                           n_head=hf["n_head"], n_embd=hf["n_embd"], n_inner=hf.get("n_inner"), dropout=dropout,
                           bias=True)
        model = cls(config)
        sd = model.state_dict()
        hf_sd = read_weights(folder)
        # checkpoints saved from GPT2Model lack the "transformer." prefix; the causal-mask buffers are not weights
        hf_sd = {k if k.startswith(("transformer.", "lm_head.")) else "transformer." + k: v for k, v in hf_sd.items()}
        hf_sd = {k: v for k, v in hf_sd.items() if not k.endswith((".attn.bias", ".attn.masked_bias"))}
        hf_sd.setdefault("lm_head.weight", hf_sd["transformer.wte.weight"])
        missing = set(sd) - set(hf_sd)
        if missing:
            raise ValueError(f"{folder}: weights missing for {sorted(missing)[:5]}")
        # Hugging Face's GPT-2 uses Conv1D layers, which store their weight as (in, out): transpose to Linear's
        conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
        with torch.no_grad():
            for k, v in sd.items():
                w = hf_sd[k].float()
                v.copy_(w.t() if k.endswith(conv1d) else w)
        return model


def plain_state_dict(sd):
    """Tolerate state dicts saved from a compiled or DDP-wrapped model by someone else's script."""
    return {k.removeprefix("_orig_mod.").removeprefix("module."): v for k, v in sd.items()}


def load_checkpoint(path, map_location="cpu", mmap=False):
    """Read a checkpoint written by train.py, with one clear error for a missing, corrupt or foreign file."""
    if os.path.isdir(path):
        path = os.path.join(path, "ckpt.pt")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # torch.save writes a zip archive
            raise ValueError(f"{path} is not a readable checkpoint: it is not the zip archive torch.save writes")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError:  # torch.load refused to unpickle it: the refusal keeps a stranger's code out
        raise ValueError(f"{path} is not a readable checkpoint: it holds Python objects beyond tensors and plain "
                         "types, which are not loaded (they could run code)") from None
    except RuntimeError as e:  # what PyTorch's zip reader says of a file cut short or damaged
        reason = str(e).strip().split(". ")[0]
        raise ValueError(f"{path} is not a readable checkpoint: it is corrupt or incomplete ({reason})") from None
    except Exception as e:
        raise ValueError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_args" not in ckpt:
        raise ValueError(f"{path} is not a nanodisperse checkpoint (no 'model' and 'model_args' entries)")
    return ckpt


def hf_cache_dirs():
    """Where the Hugging Face hub keeps downloaded models, in the order it looks itself."""
    if os.environ.get("HF_HUB_CACHE"):
        return [os.environ["HF_HUB_CACHE"]]
    home = os.environ.get("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache", "huggingface"))
    return [os.path.join(home, "hub")]


def find_pretrained(name_or_dir):
    """A local directory as is, else the newest snapshot of the model in the Hugging Face cache."""
    if os.path.isdir(name_or_dir):
        if not os.path.isfile(os.path.join(name_or_dir, "config.json")):
            raise FileNotFoundError(f"{name_or_dir} has no config.json")
        return name_or_dir
    repos = [name_or_dir] if "/" in name_or_dir else [name_or_dir, "openai-community/" + name_or_dir]
    looked = []
    for cache in hf_cache_dirs():
        for repo in repos:
            snapshots = os.path.join(cache, "models--" + repo.replace("/", "--"), "snapshots")
            looked.append(snapshots)
            if os.path.isdir(snapshots):
                for snap in sorted(os.scandir(snapshots), key=lambda e: e.stat().st_mtime, reverse=True):
                    if os.path.isfile(os.path.join(snap.path, "config.json")):
                        return snap.path
    raise FileNotFoundError(f"model '{name_or_dir}' not found: need a directory with config.json and "
                            f"model.safetensors or pytorch_model.bin; looked in ./{name_or_dir} and "
                            + ", ".join(looked))


SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                      "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
                      "U8": torch.uint8, "BOOL": torch.bool}


def read_safetensors(path):
    """A .safetensors file is an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
    shape and byte range, then the raw little-endian bytes; that is all we need to read it."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        n = int.from_bytes(m[:8], "little")
        header = json.loads(m[8:8 + n])
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            start, end = info["data_offsets"]
            raw = bytearray(m[8 + n + start:8 + n + end])
            t = torch.frombuffer(raw, dtype=SAFETENSORS_DTYPES[info["dtype"]]) if raw else torch.empty(0)
            out[name] = t.reshape(info["shape"])
    return out


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # Hugging Face's names, safetensors preferred


def read_weights(folder):
    """All tensors of a Hugging Face model folder: one weights file, or shards listed by an index file
    (model.safetensors.index.json, pytorch_model.bin.index.json), whose "weight_map" names each tensor's shard."""
    for name in WEIGHT_FILES:
        path, index = os.path.join(folder, name), os.path.join(folder, name + ".index.json")
        if os.path.isfile(path):
            return read_weight_file(path)
        if os.path.isfile(index):
            with open(index) as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
            missing = [s for s in shards if not os.path.isfile(os.path.join(folder, s))]
            if missing:
                raise FileNotFoundError(f"{index} lists {len(shards)} shards, but {missing[0]} is not in {folder}")
            weights = {}
            for shard in shards:
                weights.update(read_weight_file(os.path.join(folder, shard)))
            return weights
    raise FileNotFoundError(f"{folder} has config.json but no weights: none of "
                            + ", ".join(f"{n}, {n}.index.json" for n in WEIGHT_FILES))


def read_weight_file(path):
    if path.endswith(".safetensors"):
        return read_safetensors(path)
    return torch.load(path, map_location="cpu", weights_only=True)
