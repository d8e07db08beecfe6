"""A tiny random chat LLM saved to a folder, loaded by tests through `load_llm(folder)` like a real one.

The tokenizer is a byte-level BPE trained on a few sentences (any text encodes), with ChatML special
tokens, SmolLM2's chat template (including its default system prompt when none is given, shortened)
and, as in SmolLM2, the end token as pad token. The model's config has no pad_token_id: Llama would
zero and freeze that embedding row, and with tied embeddings the end token could never be predicted.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a default assistant<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Weights drawn with std 0.4 (not 0.02) so that a few LoRA steps can move the logits of a 32-wide model.
INIT = 0.4
SENTENCES = [
    "What key is this music in? The key is A minor.",
    "How fast is the tempo? About 120 beats per minute.",
    "Describe the music. A calm piano piece with soft chords.",
    "You are a music expert. Listen to the audio and answer the question.",
    "I would assign a 3 on the 1-9 scale. C major, G major, E minor, F# major.",
]


def build_tiny_llm(folder: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    import torch

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(SENTENCES * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                        unk_token="<|endoftext|>", pad_token="<|im_end|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=None, tie_word_embeddings=True,
                         initializer_range=INIT)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
