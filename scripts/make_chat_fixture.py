#!/usr/bin/env python3
"""Golden multi-turn chat prompts for the LLaDA-Instruct chat format: the conversation rendered
by Jinja from LLaDA-8B-Instruct's own chat template (tokenizer_config.json), tokenized by
Hugging Face `tokenizers` with the embedded default model's tokenizer.json.
Writes Tests/L2PDTokenizerTests/Fixtures/chat/{tokenizer.json, golden.json}.
Needs: pip install tokenizers jinja2"""
import json
import os
import shutil

import jinja2
from tokenizers import Tokenizer

# LLaDA-8B-Instruct's chat_template, verbatim from its tokenizer_config.json.
TEMPLATE = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' "
            "+ message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
            "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
            "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}")

CONVERSATIONS = [
    [{"role": "user", "content": "What is 12 + 30?"}],
    [{"role": "user", "content": "  Copy the digits 8675309.\n"}],
    [{"role": "system", "content": "You are a careful calculator."}, {"role": "user", "content": "What is 7 + 5?"}],
    [{"role": "user", "content": "What is 12 + 30?"}, {"role": "assistant", "content": "12 + 30 = 42"},
     {"role": "user", "content": "Add 4821 and 917."}],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Count from 7 to 12."},
     {"role": "assistant", "content": "7 8 9 10 11 12\n\n"}, {"role": "user", "content": "\tCopy the digits 2024."},
     {"role": "assistant", "content": "2024"}, {"role": "user", "content": "What is 3 + 4?"}],
]


def main() -> None:
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    source = os.path.join(root, "Sources", "L2PDDefaultModel", "Model", "tokenizer.json")
    out = os.path.join(root, "Tests", "L2PDTokenizerTests", "Fixtures", "chat")
    os.makedirs(out, exist_ok=True)
    shutil.copyfile(source, os.path.join(out, "tokenizer.json"))
    tokenizer = Tokenizer.from_file(source)
    template = jinja2.Environment().from_string(TEMPLATE)
    cases = []
    for messages in CONVERSATIONS:
        text = template.render(messages=messages, bos_token="<|startoftext|>")
        cases.append({"messages": messages, "text": text, "ids": tokenizer.encode(text, add_special_tokens=False).ids})
    with open(os.path.join(out, "golden.json"), "w") as f:
        json.dump({"cases": cases}, f, indent=1, ensure_ascii=False)
    print(f"{len(cases)} conversations -> {out}")


if __name__ == "__main__":
    main()
