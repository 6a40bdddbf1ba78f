"""sample.py: seeded samples repeat, top_k 1 is argmax decoding done by hand, the padded vocabulary rows are never
drawn, an exported model sampled through transformers agrees with ours, and every bad prompt gets one line."""

import pytest
import torch

import sample
from data.tokenizer import char_spec, get_tokenizer
from model import GPT, GPTConfig

SPEC = char_spec("abcdefgh ijklmnop\n.,")


@pytest.fixture(scope="module")
def char_ckpt(tmp_path_factory):
    """A random char model with its vocabulary padded from 20 to 64 rows, as train.py pads it."""
    torch.manual_seed(0)
    args = dict(block_size=16, vocab_size=64, n_layer=2, n_head=2, n_embd=16, n_inner=None, dropout=0.0, bias=True)
    net = GPT(GPTConfig(**args)).eval()
    path = tmp_path_factory.mktemp("char") / "ckpt.pt"
    torch.save({"model": net.state_dict(), "model_args": args, "tokenizer": SPEC}, path)
    return net, str(path)


def run(ckpt, capsys, *flags):
    samples = sample.main([ckpt, "--device", "cpu", *flags])
    return samples, capsys.readouterr().out


def test_seeded_samples_repeat(char_ckpt, capsys):
    _, ckpt = char_ckpt
    flags = ("--start", "abc", "--num_samples", "3", "--max_new_tokens", "40", "--seed", "1")
    first, out = run(ckpt, capsys, *flags)
    again, out_again = run(ckpt, capsys, *flags)
    other, _ = run(ckpt, capsys, *flags[:-1], "2")
    assert first == again and out == out_again and other != first
    assert len(first) == 3 and len({tuple(s) for s in first}) == 3  # three different draws, not one repeated
    decode = get_tokenizer(SPEC)[1]
    assert out == "".join(decode(s) + "\n" + sample.SEPARATOR + "\n" for s in first)
    assert all(len(s) == 3 + 40 and decode(s).startswith("abc") for s in first)


def test_top_k_1_is_argmax_decoding(char_ckpt, capsys):
    net, ckpt = char_ckpt
    encode = get_tokenizer(SPEC)[0]
    # by hand: the likeliest real token, again and again, on the last block_size tokens (past the 16 of the context)
    ids = encode("hello")
    with torch.no_grad():
        for _ in range(30):
            logits = net(torch.tensor([ids[-16:]]))[0][0, -1, :len(SPEC["chars"])]
            ids.append(int(logits.argmax()))
    for seed, temperature in (("1", "0.8"), ("7", "2.0")):  # greedy: neither the seed nor the temperature matters
        samples, _ = run(ckpt, capsys, "--start", "hello", "--top_k", "1", "--max_new_tokens", "30",
                         "--num_samples", "2", "--seed", seed, "--temperature", temperature)
        assert samples == [ids, ids]


def test_padded_rows_are_never_drawn(char_ckpt):
    net, _ = char_ckpt
    idx = torch.zeros((4, 1), dtype=torch.long)
    torch.manual_seed(0)
    # a huge temperature makes every row about as likely: 44 of the 64 rows are padding
    unmasked = net.generate(idx, 30, temperature=1e3)
    masked = net.generate(idx, 30, temperature=1e3, n_vocab=20)
    assert unmasked.max() >= 20  # the failure the mask prevents
    assert masked.max() < 20 and len(set(masked[:, 1:].flatten().tolist())) > 10


def test_prompt_from_file(char_ckpt, capsys, tmp_path):
    _, ckpt = char_ckpt
    (tmp_path / "prompt.txt").write_text("ab.\ncd", encoding="utf-8")
    flags = ("--max_new_tokens", "5", "--num_samples", "1")
    from_file, _ = run(ckpt, capsys, "--start", f"FILE:{tmp_path / 'prompt.txt'}", *flags)
    inline, _ = run(ckpt, capsys, "--start", "ab.\ncd", *flags)
    assert from_file == inline and from_file[0][:6] == get_tokenizer(SPEC)[0]("ab.\ncd")


@pytest.mark.parametrize("flags,message", [
    (["--start", "abcZ"], "error: --start: character 'Z' (U+005A) at position 3 is not in the char tokenizer's "
                          "vocabulary of 20 characters"),
    (["--start", ""], "error: --start is empty: give at least one character (the default is a newline)"),
    (["--start", "a" * 17], "error: --start is 17 tokens, longer than {ckpt}'s context of 16"),
    (["--start", "FILE:{missing}"], "error: --start FILE:{missing}: No such file or directory"),
    (["--temperature", "0"], "error: --temperature must be positive, got 0.0 (--top_k 1 is greedy decoding) "
                             "(see python sample.py --help)"),
    (["--max_new_tokens", "0"], "error: --max_new_tokens must be at least 1, got 0 (see python sample.py --help)"),
    (["--temperature", "nan"], "error: argument --temperature: not a finite number: 'nan' (see python sample.py "
                               "--help)"),
])
def test_bad_input_is_one_line(char_ckpt, tmp_path, capsys, flags, message):
    _, ckpt = char_ckpt
    fill = lambda s: s.format(ckpt=ckpt, missing=tmp_path / "missing.txt")
    with pytest.raises(SystemExit) as e:
        sample.main([ckpt, *map(fill, flags)])
    assert e.value.code == fill(message)
    assert capsys.readouterr().out == ""


def test_not_a_model_is_one_line(tmp_path):
    (tmp_path / "x.pt").write_text("not weights")
    with pytest.raises(SystemExit) as e:
        sample.main([str(tmp_path / "x.pt")])
    assert e.value.code.startswith("error: ") and "is not a readable checkpoint" in e.value.code


@pytest.mark.parametrize("end_of_text", [False, True])
def test_exported_model_through_transformers_agrees(tmp_path, capsys, end_of_text):
    """hf: models sample through transformers' generate; on our exported model, greedy decoding is ours, also when
    it draws <|endoftext|> (which must neither stop transformers early nor be forbidden to it)."""
    pytest.importorskip("transformers")
    import export
    torch.manual_seed(0)
    args = dict(block_size=32, vocab_size=50304, n_layer=2, n_head=2, n_embd=16, n_inner=None, dropout=0.0, bias=True)
    net = GPT(GPTConfig(**args))
    with torch.no_grad():  # spread the logits, so that greedy decoding has no near ties to break differently
        net.transformer.wte.weight.mul_(20)
        if end_of_text:  # <|endoftext|> becomes the likeliest token after " world"
            net.transformer.wte.weight[50256] = 1.5 * net.transformer.wte.weight[995]
    torch.save({"model": net.state_dict(), "model_args": args, "tokenizer": {"name": "gpt2"}}, tmp_path / "ckpt.pt")
    export.export(str(tmp_path / "ckpt.pt"), tmp_path / "hf")
    flags = ("--start", "Hello world", "--top_k", "1", "--max_new_tokens", "12", "--num_samples", "1")
    ours, out = run(str(tmp_path / "ckpt.pt"), capsys, *flags)
    theirs, out_hf = run("hf:" + str(tmp_path / "hf"), capsys, *flags)
    assert ours == theirs and out == out_hf and ours[0][:2] == [15496, 995] and len(ours[0]) == 14
    assert (ours[0][2] == 50256) == end_of_text
    with pytest.raises(SystemExit) as e:  # transformers' GPT-2 cannot slide past its context, ours can
        sample.main(["hf:" + str(tmp_path / "hf"), "--max_new_tokens", "40"])
    assert e.value.code == f"error: hf:{tmp_path / 'hf'}: prompt (1 tokens) + --max_new_tokens 40 is longer than " \
                           "its context of 32"
