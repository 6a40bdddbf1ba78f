"""GPT-2 weights on demand (support/hub.py) against a stand-in hub on 127.0.0.1 that answers resolve URLs with the
headers huggingface.co sends: the cache it leaves is the one huggingface_hub writes, a second run asks nothing, and
every failure is one line that leaves no half-written file behind."""

import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import urllib.parse

import pytest
import torch

import measure
from support import hub, load, progress

transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

LFS = (".safetensors", ".bin")  # the files the hub keeps in LFS storage, served through a redirect


def git_sha1(data):
    """The hub's ETag of a plain file: its git blob id."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class StandInHub:
    """A hub of repos {name: (commit, {file: bytes})} on a free port. Switches: refuse (every repo missing, with
    this status), cut (the storage sends half a file and hangs up), corrupt (it sends other bytes)."""

    def __init__(self):
        self.repos, self.requests, self.renamed = {}, [], {}
        self.refuse, self.cut, self.corrupt = None, False, False
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("H", (Handler,), {"hub": self}))
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def add(self, repo, files):
        commit = hashlib.sha1(repo.encode() + b"".join(files[f] for f in sorted(files))).hexdigest()
        self.repos[repo] = (commit, files)
        return commit

    def blob(self, sha):
        return next(d for _, files in self.repos.values() for d in files.values()
                    if hashlib.sha256(d).hexdigest() == sha)

    def paths(self):
        return [p for p, _ in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Handler(http.server.BaseHTTPRequestHandler):
    hub = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.hub.requests.append((self.path, self.headers.get("Authorization")))
        if self.path.startswith("/cdn/"):
            return self.storage(self.path[len("/cdn/"):])
        org, name, kind, revision, file = (self.path.lstrip("/").split("/", 4) + [""] * 5)[:5]
        repo = f"{org}/{name}"
        if repo in self.hub.renamed:  # the hub sends a renamed repo's old name on, by a relative redirect
            return self.answer(307, {"Location": self.path.replace(repo, self.hub.renamed[repo], 1)})
        if self.hub.refuse or repo not in self.hub.repos or kind != "resolve":
            return self.answer(self.hub.refuse or 401, {"X-Error-Code": "RepoNotFound",
                                                        "X-Error-Message": "Repository not found"})
        commit, files = self.hub.repos[repo]
        if revision not in ("main", commit):
            return self.answer(404, {"X-Error-Code": "RevisionNotFound"})
        data = files.get(urllib.parse.unquote(file))
        if data is None:
            return self.answer(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit})
        if not file.endswith(LFS):
            return self.answer(200, {"ETag": f'"{git_sha1(data)}"', "X-Repo-Commit": commit}, data)
        sha = hashlib.sha256(data).hexdigest()
        pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n".encode()
        # another host name for the same server: a CDN is another origin, which gets no token
        self.answer(302, {"Location": f"http://localhost:{self.hub.port}/cdn/{sha}?signed=1",
                          "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": len(data), "X-Repo-Commit": commit,
                          "ETag": f'"{git_sha1(pointer)}"'})

    def storage(self, path):
        data = self.hub.blob(path.split("?")[0])
        if self.hub.corrupt:
            data = bytes(reversed(data))
        if self.hub.cut:  # announces the whole file, sends half, hangs up (HTTP/1.0 closes after the answer)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            return
        self.answer(200, {}, data)

    def answer(self, status, headers, body=b""):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A random GPT-2 as the hub holds it -> (the transformers model, {file: bytes})."""
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=16, n_positions=64, vocab_size=50257)
    net = transformers.GPT2LMHeadModel(cfg).eval()
    folder = tmp_path_factory.mktemp("tiny")
    net.save_pretrained(folder, safe_serialization=True)
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    assert "model.safetensors" in files and "config.json" in files
    return net, files


@pytest.fixture
def stand(tiny, tmp_path, monkeypatch):
    """The stand-in with openai-community/gpt2 on it, HF_ENDPOINT at it and an empty HF_HUB_CACHE."""
    s = StandInHub()
    s.commit = s.add("openai-community/gpt2", tiny[1])
    for k in ("HF_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", s.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    s.cache = tmp_path / "cache"
    yield s
    s.close()


def same_logits(ours, net):
    idx = torch.randint(0, 50257, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.allclose(ours.eval()(idx)[0], net(idx).logits, atol=1e-5, rtol=0)


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


def test_the_first_load_downloads_into_huggingface_hubs_layout_and_the_second_asks_nothing(stand, tiny,
                                                                                          monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    net, files = tiny
    assert same_logits(load.load_gpt2("gpt2"), net)
    sha = hashlib.sha256(files["model.safetensors"]).hexdigest()
    resolve = "/openai-community/gpt2/resolve"
    token = "Bearer hf_secret"
    assert stand.requests == [(f"{resolve}/main/config.json", token),  # main's commit, then the weights at it
                              (f"{resolve}/{stand.commit}/model.safetensors", token),
                              (f"/cdn/{sha}?signed=1", None)]  # the token stays with the hub
    repo = stand.cache / "models--openai-community--gpt2"
    assert (repo / "refs" / "main").read_text() == stand.commit
    etags = {"config.json": git_sha1(files["config.json"]), "model.safetensors": sha}
    assert sorted(p.name for p in (repo / "blobs").iterdir()) == sorted(etags.values())
    snap = repo / "snapshots" / stand.commit
    assert sorted(p.name for p in snap.iterdir()) == sorted(etags)
    for name, etag in etags.items():
        assert os.readlink(snap / name) == f"../../blobs/{etag}" and (snap / name).read_bytes() == files[name]
    assert "openai-community/gpt2 model.safetensors" in capsys.readouterr().err  # the progress line
    stand.requests.clear()
    assert load.open_model("gpt2")[0]["max_len"] == 64 and same_logits(load.load_gpt2("gpt2"), net)
    assert hub.find_pretrained("openai-community/gpt2") == str(snap) and stand.requests == []


def test_transformers_finds_what_was_downloaded(stand, tiny, monkeypatch):
    load.load_gpt2("gpt2")
    stand.requests.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    theirs = transformers.AutoModelForCausalLM.from_pretrained("openai-community/gpt2", cache_dir=str(stand.cache),
                                                               local_files_only=True).eval()
    assert stand.requests == []
    ref = tiny[0].state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in theirs.state_dict().items())


def shards_of(files):
    """The same weights as two safetensors shards and their index."""
    weights = safetensors_torch.load(files["model.safetensors"])
    names = sorted(weights)
    out = {"config.json": files["config.json"]}
    halves = {"model-00001-of-00002.safetensors": names[:len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    for shard, keys in halves.items():
        out[shard] = safetensors_torch.save({k: weights[k] for k in keys})
    index = {"metadata": {}, "weight_map": {k: shard for shard, keys in halves.items() for k in keys}}
    out["model.safetensors.index.json"] = json.dumps(index).encode()
    return out


def bin_of(files, net):
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    return {"config.json": files["config.json"], "pytorch_model.bin": buf.getvalue()}


@pytest.mark.parametrize("layout", ["sharded", "bin"])
def test_a_sharded_checkpoint_and_a_pytorch_bin(stand, tiny, layout):
    net, files = tiny
    repo_files = shards_of(files) if layout == "sharded" else bin_of(files, net)
    commit = stand.add("someone/tiny-gpt2", repo_files)
    (m,) = load.open_model("someone/tiny-gpt2")  # an org/name that is no folder here: the hub
    idx = torch.randint(0, 50257, (1, 10), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(m["load"]("cpu", torch.float32)["logits"](idx), net(idx).logits, atol=1e-5, rtol=0)
    asked = [p.rsplit("/", 1)[1] for p in stand.paths() if "/resolve/" in p]
    weights = sorted(f for f in repo_files if f.endswith(LFS))
    assert asked == ["config.json", "model.safetensors", "model.safetensors.index.json", *weights]
    missing = ["model.safetensors"] + (["model.safetensors.index.json"] if layout == "bin" else [])
    repo = stand.cache / "models--someone--tiny-gpt2"
    assert sorted(p.name for p in (repo / "snapshots" / commit).iterdir()) == sorted(repo_files)
    assert sorted(p.name for p in (repo / ".no_exist" / commit).iterdir()) == missing  # as huggingface_hub notes


@pytest.mark.parametrize("status", [401, 404])
def test_a_repo_the_hub_does_not_have_is_one_line_and_leaves_nothing(stand, status):
    stand.refuse = status
    with pytest.raises(load.ModelError) as e:
        load.open_model("nobody/no-such-model")
    msg = str(e.value)
    assert "\n" not in msg and "nobody/no-such-model" in msg and "check the name" in msg
    assert not stand.cache.exists() or files_under(stand.cache) == []


def test_a_transfer_cut_in_half_keeps_nothing_and_the_next_run_starts_again(stand, tiny):
    stand.cut = True
    with pytest.raises(FileNotFoundError) as e:  # a HubError, which every script already reports
        load.load_gpt2("gpt2")
    size = len(tiny[1]["model.safetensors"])
    assert str(e.value) == (f"the download of openai-community/gpt2 model.safetensors was cut off after "
                            f"{size // 2:,} of {size:,} bytes: run again to restart it")
    kept = files_under(stand.cache)
    assert not [f for f in kept if f.endswith(".incomplete")]
    assert [f for f in kept if "/blobs/" in f] == [f"models--openai-community--gpt2/blobs/"
                                                  f"{git_sha1(tiny[1]['config.json'])}"]  # config.json was whole
    stand.cut = False
    assert same_logits(load.load_gpt2("gpt2"), tiny[0])


def test_without_the_hub_an_empty_cache_is_one_line_and_a_full_one_needs_no_network(stand, tiny, tmp_path,
                                                                                   monkeypatch):
    load.load_gpt2("gpt2")
    stand.close()
    assert same_logits(load.load_gpt2("gpt2"), tiny[0])  # from the cache alone
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(load.ModelError) as e:
        load.open_model("gpt2")
    msg = str(e.value)
    assert msg.startswith(f"cannot reach {stand.url} (") and msg.endswith("check the network and HF_ENDPOINT")
    assert not (tmp_path / "empty").exists() or files_under(tmp_path / "empty") == []


def test_offline_means_no_request(stand, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(load.ModelError, match="HF_HUB_OFFLINE is set, so it is not downloaded") as e:
        load.open_model("gpt2")
    assert "\n" not in str(e.value) and stand.requests == []


def test_a_file_that_does_not_match_its_checksum_is_refused(stand, tiny):
    stand.corrupt = True
    with pytest.raises(FileNotFoundError, match=r"model.safetensors arrived corrupt \(sha256 .*nothing was kept"):
        load.load_gpt2("gpt2")
    kept = files_under(stand.cache)
    assert not [f for f in kept if f.endswith(".incomplete") or "model.safetensors" in f]
    assert hub.find_cached("gpt2")[0] is None


def test_a_model_that_is_not_gpt2_is_refused_before_its_weights(stand, tiny):
    config = json.loads(tiny[1]["config.json"]) | {"model_type": "llama"}
    stand.add("meta/tiny-llama", {"config.json": json.dumps(config).encode(),
                                  "model.safetensors": tiny[1]["model.safetensors"]})
    with pytest.raises(load.ModelError) as e:
        load.open_model("meta/tiny-llama")
    assert str(e.value) == "meta/tiny-llama holds a llama model, not GPT-2: use hf:meta/tiny-llama"
    assert [p.rsplit("/", 1)[1] for p in stand.paths()] == ["config.json"]


def test_a_renamed_repo_is_followed_and_copies_stand_in_where_symlinks_cannot_be_made(stand, tiny, monkeypatch):
    def no_symlinks(*args, **kwargs):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    stand.renamed["old-org/gpt2"] = "openai-community/gpt2"
    assert same_logits(load.load_gpt2("old-org/gpt2"), tiny[0])
    assert stand.paths()[:2] == ["/old-org/gpt2/resolve/main/config.json",
                                 "/openai-community/gpt2/resolve/main/config.json"]
    snap = stand.cache / "models--old-org--gpt2" / "snapshots" / stand.commit  # named as asked, as the hub does
    assert not (snap / "model.safetensors").is_symlink()
    assert (snap / "model.safetensors").read_bytes() == tiny[1]["model.safetensors"]


def test_a_full_disk_is_one_line_and_keeps_nothing(stand, monkeypatch):
    real_open = open

    class Full(io.FileIO):
        def write(self, b):
            raise OSError(28, "No space left on device")

    def full_open(path, mode="r", *args, **kwargs):
        return Full(path, "wb") if str(path).endswith(".incomplete") else real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(hub, "open", full_open, raising=False)  # the module's open, shadowing the builtin
    with pytest.raises(FileNotFoundError) as e:
        load.load_gpt2("gpt2")
    blobs = stand.cache / "models--openai-community--gpt2" / "blobs"
    assert str(e.value) == (f"no space left at {blobs} for openai-community/gpt2 config.json: free some, or set "
                            "HF_HUB_CACHE to a folder on another disk")
    assert list(blobs.iterdir()) == []


def test_the_progress_line_is_paced_in_a_log():
    log = io.StringIO()
    add = progress.byte_meter(3_000_000_000, "org/name model.safetensors", file=log)  # a log: a line every 10 s
    for _ in range(300):
        add(10_000_000)
    add(0, final="done in")
    assert log.getvalue().startswith("  org/name model.safetensors 3.00/3.00 GB, ") and "\r" not in log.getvalue()
    assert len(log.getvalue().splitlines()) == 1 and "done in 0 s" in log.getvalue()


def run_measure(stand, tmp_path):
    env = dict(os.environ, HF_ENDPOINT=stand.url, HF_HUB_CACHE=str(tmp_path / "cache"),
               NO_PROXY="127.0.0.1,localhost")
    return subprocess.run([sys.executable, measure.__file__, "gpt2", "--n_texts", "2", "--seq_len", "16",
                           "--n_boot", "0", "--device", "cpu", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=300)


def test_measure_downloads_gpt2_end_to_end_and_reports_a_missing_one_in_one_line(stand, tmp_path):
    r = run_measure(stand, tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "out" / "condensation.json").read_text())
    stand.refuse = 404
    r = run_measure(stand, tmp_path / "again")
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == [f"error: openai-community/gpt2: not a local folder, nor a model repo "
                                             f"on {stand.url} (it answered 404): check the name (a private repo "
                                             "needs HF_TOKEN)"]
