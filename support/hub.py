"""
Hugging Face's files, read with the standard library and torch alone: the hub's cache (where a model downloaded
once is found again), GPT-2 weights downloaded into that cache on first use (laid out as huggingface_hub lays it
out, so that transformers finds them too), and weight files (safetensors or PyTorch's .bin, one file or shards).
"""

import contextlib
import errno
import hashlib
import http.client
import json
import mmap
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request

import torch

from support import progress

try:
    import fcntl  # the lock huggingface_hub takes too (filelock uses flock); Windows goes without
except ImportError:
    fcntl = None

GPT2_NAMES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")  # on the hub as openai-community/<name>
GPT2_ORG = "openai-community"
REPO_ID = re.compile(r"[A-Za-z0-9_][\w.-]{0,95}/[A-Za-z0-9_][\w.-]{0,95}", re.ASCII)  # org/name
SAFE_NAME = re.compile(r"[\w.-]+", re.ASCII)  # an etag or a commit, used as a file name
REPO_FILE = re.compile(r"(?!.*\.\.)[\w.-]+(/[\w.-]+)*", re.ASCII)  # a shard's name: no way out of its folder
TIMEOUT = 30  # seconds without a byte before a connection counts as lost
CHUNK = 1 << 20


class HubError(FileNotFoundError):
    """Weights that could not be had from the hub; the message is one line saying what to do. A FileNotFoundError,
    as a model missing from the cache always was, so that every script reports it the same way."""


def hf_cache_dirs():
    """Where the Hugging Face hub keeps downloaded models, in the order it looks itself."""
    if os.environ.get("HF_HUB_CACHE"):
        return [os.environ["HF_HUB_CACHE"]]
    home = os.environ.get("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache", "huggingface"))
    return [os.path.join(home, "hub")]


def hub_endpoint():
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_offline():
    """HF_HUB_OFFLINE (or transformers' older TRANSFORMERS_OFFLINE) as huggingface_hub reads it."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in ("1", "ON", "YES", "TRUE")


def hub_repo(name):
    """The hub repo a model name stands for: gpt2 ... gpt2-xl are openai-community's, org/name is itself; None for
    anything else (another bare name is looked for in the cache alone)."""
    if name in GPT2_NAMES:
        return f"{GPT2_ORG}/{name}"
    return name if REPO_ID.fullmatch(name) and "--" not in name and ".." not in name else None


def repo_folder(repo):
    return "models--" + repo.replace("/", "--")


def find_pretrained(name_or_dir):
    """A local directory as is, else the model's snapshot in the Hugging Face cache, else the model downloaded from
    the hub into that cache (not under HF_HUB_OFFLINE) -> the folder with config.json and the weights."""
    if os.path.isdir(name_or_dir):
        if not os.path.isfile(os.path.join(name_or_dir, "config.json")):
            raise FileNotFoundError(f"{name_or_dir} has no config.json")
        return name_or_dir
    found, looked = find_cached(name_or_dir)
    if found:
        return found
    repo = hub_repo(name_or_dir)
    if repo is None:
        raise FileNotFoundError(f"model '{name_or_dir}' not found: need a directory with config.json and "
                                f"model.safetensors or pytorch_model.bin; looked in ./{name_or_dir} and "
                                + ", ".join(looked))
    if hub_offline():
        raise HubError(f"{name_or_dir} is not in the Hugging Face cache ({', '.join(looked)}), and HF_HUB_OFFLINE "
                       "is set, so it is not downloaded: unset HF_HUB_OFFLINE, or point HF_HUB_CACHE at a cache "
                       "that has it")
    return download(repo, name_or_dir)


def find_cached(name):
    """-> (the cached snapshot with config.json and all its weights: the one refs/main names, else the newest;
    None if there is none, the snapshot folders looked in)."""
    repos = [name] if "/" in name else [name, f"{GPT2_ORG}/{name}"]
    looked = []
    for cache in hf_cache_dirs():
        for repo in repos:
            storage = os.path.join(cache, repo_folder(repo))
            looked.append(os.path.join(storage, "snapshots"))
            for snap in cached_snapshots(storage):
                if os.path.isfile(os.path.join(snap, "config.json")) and has_weights(snap):
                    return snap, looked
    return None, looked


def cached_snapshots(storage):
    snapshots = os.path.join(storage, "snapshots")
    if not os.path.isdir(snapshots):
        return []
    found = [e.path for e in sorted(os.scandir(snapshots), key=lambda e: e.stat().st_mtime, reverse=True)]
    try:
        with open(os.path.join(storage, "refs", "main")) as f:
            main = os.path.join(snapshots, f.read().strip())
    except OSError:
        return found
    return [main] * (main in found) + [p for p in found if p != main]


def download(repo, name):
    """A GPT-2's config.json and weights from the hub into the cache -> its snapshot folder. config.json comes
    first, so that another kind of model is refused before any weights; then the weights at that same commit, in
    transformers' order of preference."""
    storage = os.path.join(hf_cache_dirs()[0], repo_folder(repo))
    config, commit = fetch(repo, "main", "config.json", storage)
    if config is None:
        raise HubError(f"{repo} on {hub_endpoint()} has no config.json: it is not a transformers model")
    try:
        with open(config) as f:
            model_type = json.load(f).get("model_type", "gpt2")
    except (ValueError, AttributeError):
        raise HubError(f"{repo}: its config.json is not a JSON object") from None
    if model_type != "gpt2":
        raise HubError(f"{repo} holds a {model_type} model, not GPT-2: use hf:{name}")
    for weights in WEIGHT_FILES:
        if fetch(repo, commit, weights, storage, show=True)[0]:
            return os.path.dirname(config)
        index = fetch(repo, commit, weights + ".index.json", storage)[0]
        if index:
            for shard in shard_names(index):
                if fetch(repo, commit, shard, storage, show=True)[0] is None:
                    raise HubError(f"{repo}: {weights}.index.json lists {shard}, which the hub does not have")
            return os.path.dirname(config)
    raise HubError(f"{repo} on {hub_endpoint()} has config.json but no weights: none of "
                   + ", ".join(f"{n}, {n}.index.json" for n in WEIGHT_FILES))


def shard_names(index):
    try:
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
    except (ValueError, KeyError, TypeError, AttributeError):
        shards = []
    if not shards or not all(isinstance(s, str) and REPO_FILE.fullmatch(s) for s in shards):
        raise HubError(f"{index} is not a weights index whose weight_map names the shards")
    return shards


def fetch(repo, revision, filename, storage, show=False):
    """One file of a repo into the cache -> (its path in snapshots/<commit>/, the commit), or (None, commit) where
    the repo has no such file. A blob already in the cache is not downloaded again."""
    url = f"{hub_endpoint()}/{repo}/resolve/{urllib.parse.quote(revision, safe='')}/{urllib.parse.quote(filename)}"
    status, headers, body = resolve(url, repo)
    with contextlib.closing(body):
        commit = headers.get("X-Repo-Commit")
        if status == 404:  # the repo is there, the file is not: noted as huggingface_hub notes it
            if commit and SAFE_NAME.fullmatch(commit):
                with contextlib.suppress(OSError):  # a note only, which a read-only cache does without
                    missing = os.path.join(storage, ".no_exist", commit, *filename.split("/"))
                    os.makedirs(os.path.dirname(missing), exist_ok=True)
                    open(missing, "a").close()
            return None, commit
        etag = (headers.get("X-Linked-Etag") or headers.get("ETag") or "").removeprefix("W/").strip('"')
        if not (commit and SAFE_NAME.fullmatch(commit) and SAFE_NAME.fullmatch(etag)):
            raise HubError(f"{hub_endpoint()} does not answer as the Hugging Face hub does (no X-Repo-Commit or "
                           f"ETag for {filename}): check HF_ENDPOINT")
        size = headers.get("X-Linked-Size") or (headers.get("Content-Length") if status == 200 else None)
        size = int(size) if size and size.isdigit() else None
        blob = os.path.join(storage, "blobs", etag)
        pointer = os.path.join(storage, "snapshots", commit, *filename.split("/"))
        lock = os.path.join(os.path.dirname(storage), ".locks", os.path.basename(storage), etag + ".lock")
        try:
            with locked(lock):
                if not os.path.isfile(blob):  # else another snapshot, or another process, has it already
                    source = body if status == 200 else storage_location(headers, url)
                    with contextlib.closing(source):
                        save(source, blob, size, etag, f"{repo} {filename}", show)
                link(blob, pointer)
            if revision != commit:  # refs/main: the commit that main was at, where transformers looks first
                os.makedirs(os.path.join(storage, "refs"), exist_ok=True)
                with open(os.path.join(storage, "refs", revision), "w") as f:
                    f.write(commit)
        except HubError:
            raise
        except OSError as e:
            raise HubError(f"cannot write the Hugging Face cache at {storage}: {e.strerror or e}") from None
    return pointer, commit


def resolve(url, repo):
    """GET a file's resolve URL, following the hub's own redirects (a renamed repo) but not the one of a large file
    to its storage, whose headers carry what we need: the file's etag, size and commit -> (status, headers, body);
    404 only where the repo has no such file."""
    for _ in range(5):
        status, headers, body = request(url, auth=origin(url) == origin(hub_endpoint()))
        if not 300 <= status < 400 or headers.get("X-Repo-Commit"):
            break
        body.close()
        if not headers.get("Location"):
            raise HubError(f"{url} redirects nowhere (no Location): check HF_ENDPOINT")
        url = urllib.parse.urljoin(url, headers["Location"])
    else:
        raise HubError(f"{url}: too many redirects; check HF_ENDPOINT")
    no_such_file = status == 404 and headers.get("X-Error-Code") == "EntryNotFound"
    if status == 200 or no_such_file or (300 <= status < 400 and headers.get("Location")):
        return status, headers, body
    body.close()
    raise HubError(refusal(status, headers, repo, url))


def refusal(status, headers, repo, url):
    """The one line for a hub that says no, read from its X-Error-Code as huggingface_hub reads it."""
    code, endpoint = headers.get("X-Error-Code"), hub_endpoint()
    bad_token = headers.get("X-Error-Message") == "Invalid credentials in Authorization header"
    if code == "RepoNotFound" or (status == 401 and not bad_token):  # the hub answers 401 for a missing repo too
        return (f"{repo}: not a local folder, nor a model repo on {endpoint} (it answered {status}): check the "
                "name (a private repo needs HF_TOKEN)")
    if code == "GatedRepo":
        return f"{repo} is gated on {endpoint}: accept its terms there and set HF_TOKEN to a token of yours"
    if status == 401:
        return f"{endpoint} does not accept HF_TOKEN: check it, or unset it for a public model"
    if code == "RevisionNotFound":
        return f"{repo} has no revision at {url}: check the repo on {endpoint}"
    return f"{endpoint} answered {status} for {url}: try again later, or check HF_ENDPOINT"


def storage_location(headers, url):
    """The body of a large file, from where the hub redirects (a CDN): its signed URL needs no token, which is
    sent only where the origin is the hub's own, as huggingface_hub does."""
    location = urllib.parse.urljoin(url, headers["Location"])
    status, _, body = request(location, auth=origin(location) == origin(url), follow=True)
    if status != 200:
        body.close()
        raise HubError(f"the file storage answered {status} for {location.split('?')[0]}: try again later")
    return body


def request(url, auth, follow=False):
    """GET url -> (status, headers, response), an error status included; a network failure is a HubError."""
    req = urllib.request.Request(url, headers={"User-Agent": "nanodisperse", "Accept-Encoding": "identity"})
    if auth and os.environ.get("HF_TOKEN"):
        req.add_unredirected_header("Authorization", f"Bearer {os.environ['HF_TOKEN']}")
    opener = urllib.request.build_opener(*([] if follow else [NoRedirect]))
    try:
        response = opener.open(req, timeout=TIMEOUT)
        return response.status, response.headers, response
    except urllib.error.HTTPError as e:  # an answer all the same: its status and headers say what happened
        return e.code, e.headers, e
    except (OSError, http.client.HTTPException) as e:  # refused, unknown host, timed out, TLS
        reason = getattr(e, "reason", None) or e
        reason = getattr(reason, "strerror", None) or reason
        raise HubError(f"cannot reach {origin(url)} ({reason}): check the network and HF_ENDPOINT") from None


def origin(url):
    return "://".join(urllib.parse.urlsplit(url)[:2])  # scheme://host:port


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the redirect itself comes back as the answer, headers and all


def save(source, blob, size, etag, label, show):
    """source's bytes into blob through blob.incomplete, renamed only when whole (size bytes) and, for a file
    with a sha256 etag (an LFS file), matching it; on any failure the partial file goes: the next run starts
    afresh."""
    part = blob + ".incomplete"
    os.makedirs(os.path.dirname(blob), exist_ok=True)
    free = shutil.disk_usage(os.path.dirname(blob)).free
    if size and free < size:
        raise HubError(f"no space for {label} ({size / 1e9:.2f} GB) at {os.path.dirname(blob)}, only "
                       f"{free / 1e9:.2f} GB free: free some, or set HF_HUB_CACHE to a folder on another disk")
    meter = progress.byte_meter(size, label) if show else None
    try:
        digest = copy(source, part, size, label, meter)
        if re.fullmatch("[0-9a-f]{64}", etag) and digest != etag:
            raise HubError(f"{label} arrived corrupt (sha256 {digest[:12]}..., the hub says {etag[:12]}...): "
                           "nothing was kept; run again to download it afresh")
        os.replace(part, blob)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(part)
        if meter:
            meter(0, final="stopped after")
        raise
    if meter:
        meter(0, final="done in")


def copy(source, part, size, label, meter):
    """source into the file part, checking its length -> the sha256 of what arrived."""
    digest, got, reason = hashlib.sha256(), 0, ""
    try:
        with open(part, "wb") as f:
            while True:
                try:
                    chunk = source.read(CHUNK)
                except (OSError, http.client.HTTPException) as e:  # reset, timed out, cut mid-chunk
                    chunk, reason = b"", f" ({str(e) or type(e).__name__})"
                if not chunk:
                    break
                f.write(chunk)
                digest.update(chunk)
                got += len(chunk)
                if meter:
                    meter(len(chunk))
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise HubError(f"no space left at {os.path.dirname(part)} for {label}: free some, or set "
                           "HF_HUB_CACHE to a folder on another disk") from None
        raise HubError(f"cannot write {part}: {e.strerror or e}") from None
    if reason or (size is not None and got < size):  # a server that closes early may say nothing of it
        raise HubError(f"the download of {label} was cut off after {got:,} of "
                       f"{f'{size:,}' if size else '?'} bytes{reason}: run again to restart it")
    if size is not None and got != size:
        raise HubError(f"{label}: {got:,} bytes arrived, the hub announced {size:,}: nothing was kept; run again")
    return digest.hexdigest()


def link(blob, pointer):
    """snapshots/<commit>/<file> as a relative symlink to ../../blobs/<etag>, as huggingface_hub makes it (the
    cache can move whole); a copy where the file system has no symlinks."""
    if os.path.exists(pointer):  # a working link (or copy): the same commit and name are the same bytes
        return
    os.makedirs(os.path.dirname(pointer), exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.remove(pointer)  # a link to a blob since deleted
    try:
        os.symlink(os.path.relpath(blob, os.path.dirname(pointer)), pointer)
    except OSError:
        shutil.copyfile(blob, pointer)


@contextlib.contextmanager
def locked(path):
    """huggingface_hub's lock on a blob, .locks/<repo folder>/<etag>.lock: two processes, ours or its, never write
    the same file at once; the second waits, then finds the blob there."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        if fcntl:
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


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
    weights = {}
    for path in weight_files(folder):
        weights.update(read_weight_file(path))
    return weights


def weight_files(folder):
    """The weight files of a model folder, one file or all its shards (else a FileNotFoundError saying why)."""
    for name in WEIGHT_FILES:
        path, index = os.path.join(folder, name), os.path.join(folder, name + ".index.json")
        if os.path.isfile(path):
            return [path]
        if os.path.isfile(index):
            with open(index) as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
            missing = [s for s in shards if not os.path.isfile(os.path.join(folder, s))]
            if missing:
                raise FileNotFoundError(f"{index} lists {len(shards)} shards, but {missing[0]} is not in {folder}")
            return [os.path.join(folder, s) for s in shards]
    raise FileNotFoundError(f"{folder} has config.json but no weights: none of "
                            + ", ".join(f"{n}, {n}.index.json" for n in WEIGHT_FILES))


def has_weights(folder):
    try:
        return bool(weight_files(folder))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def read_weight_file(path):
    if path.endswith(".safetensors"):
        return read_safetensors(path)
    return torch.load(path, map_location="cpu", weights_only=True)
