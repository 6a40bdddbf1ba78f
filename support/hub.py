"""
Hugging Face's files, read with the standard library and torch alone: the hub's cache (where a model downloaded
once is found again), and weight files (safetensors or PyTorch's .bin, one file or shards).
"""

import json
import mmap
import os

import torch


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
