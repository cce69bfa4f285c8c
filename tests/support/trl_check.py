"""Loads `refine-ls learn export` output as a trainer does: Hugging Face `datasets` reads the
JSONL, TRL's own data utilities (the preprocessing its DPO and SFT trainers run) recognise the
rows as conversational and render them with a real chat template (the test model's, read from
its GGUF).

Usage: trl_check.py DPO.jsonl SFT.jsonl MODEL.gguf; prints "trl ok <dpo rows> <sft rows>".
"""

import sys

import gguf
from datasets import load_dataset
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
from trl.data_utils import is_conversational, maybe_apply_chat_template, maybe_extract_prompt

dpo_path, sft_path, model_path = sys.argv[1:4]

dpo = load_dataset("json", data_files=dpo_path, split="train")
assert dpo.column_names == ["prompt", "chosen", "rejected"], dpo.column_names
sft = load_dataset("json", data_files=sft_path, split="train")
assert sft.column_names == ["prompt", "completion"], sft.column_names

# The chat template the model was trained with; the tokenizer itself does not matter here (TRL
# renders text with the template, tokenising comes after).
reader = gguf.GGUFReader(model_path)
field = reader.fields["tokenizer.chat_template"]
template = bytes(field.parts[field.data[0]]).decode("utf-8")
words = Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>"))
words.pre_tokenizer = pre_tokenizers.Whitespace()
tokenizer = PreTrainedTokenizerFast(
    tokenizer_object=words, unk_token="<unk>", eos_token="<|im_end|>", chat_template=template
)


def rendered(row, answers):
    assert is_conversational(row), row
    assert maybe_extract_prompt(row) == row, "the prompt is already explicit"
    roles = [m["role"] for m in row["prompt"]]
    assert roles == ["system", "user"], roles
    out = maybe_apply_chat_template(row, tokenizer)
    prompt = out["prompt"]
    assert prompt.startswith("<|im_start|>system\n" + row["prompt"][0]["content"]), prompt[:200]
    assert row["prompt"][1]["content"] in prompt, "the user message is in the prompt"
    assert prompt.endswith("<|im_start|>assistant\n"), prompt[-80:]
    for key in answers:
        answer = row[key][0]
        assert answer["role"] == "assistant", answer
        assert out[key] == answer["content"] + "<|im_end|>\n", (key, out[key][-80:])
        assert out[key] != "", key
    return out


pairs = [rendered(row, ["chosen", "rejected"]) for row in dpo]
for p in pairs:
    assert p["chosen"] != p["rejected"], "a pair prefers one answer over a different one"
completions = [rendered(row, ["completion"]) for row in sft]
print("trl ok", len(pairs), len(completions))
