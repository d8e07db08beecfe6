"""A tiny random Qwen2-Audio saved to a folder, loaded by tests through `load_generator(folder)`
like the published model (`Qwen/Qwen2-Audio-7B-Instruct`) would be.

The real classes with small sizes: `Qwen2AudioForConditionalGeneration` (a 2-layer audio encoder of
width 16 over 128 mel bins, a 2-layer Qwen2 of width 32) and a `Qwen2AudioProcessor` made of a
`WhisperFeatureExtractor` (128 mel bins, 16 kHz) and a byte-level BPE tokenizer with Qwen2-Audio's
special tokens and its chat template. The feature extractor's window is 2 s instead of 30 s (200
mel frames): the encoder's `max_source_positions` must be half the padded frame count, and a short
window keeps the test fast.
"""

from __future__ import annotations

from pathlib import Path

# Qwen2-Audio-7B-Instruct's chat template (the processor's default one).
CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if 'audio' in content or 'audio_url' in content or content['type'] == 'audio' %}"
    "{% set audio_count.value = audio_count.value + 1 %}Audio {{ audio_count.value }}: <|audio_bos|><|AUDIO|><|audio_eos|>\n"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|audio_bos|>", "<|AUDIO|>", "<|audio_eos|>"]
SENTENCES = [
    "What key is this music in? The key is A minor.",
    "Describe the music. A calm piano piece with soft chords.",
    "How would you rate the arousal of this music on a scale from 1 to 9? I would assign a 3.",
    "You are a helpful assistant. Audio 1: 120 beats per minute.",
]


def build_tiny_qwen2_audio(folder: Path, *, chunk_seconds: int = 2) -> Path:
    """Save a tiny random Qwen2-Audio model and its processor into `folder`; return `folder`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        GenerationConfig, PreTrainedTokenizerFast, Qwen2AudioConfig, Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor, WhisperFeatureExtractor,
    )

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(SENTENCES * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        unk_token="<|endoftext|>", additional_special_tokens=SPECIAL[3:])
    extractor = WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, chunk_length=chunk_seconds)
    processor = Qwen2AudioProcessor(feature_extractor=extractor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)

    config = Qwen2AudioConfig(
        audio_config={"num_mel_bins": 128, "d_model": 16, "encoder_layers": 2, "encoder_attention_heads": 2,
                      "encoder_ffn_dim": 32, "max_source_positions": extractor.nb_max_frames // 2},
        text_config={"model_type": "qwen2", "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                     "max_position_embeddings": 512, "tie_word_embeddings": False},
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    )
    torch.manual_seed(0)
    model = Qwen2AudioForConditionalGeneration(config)
    # Weights of std 0.4 (not 0.02): a random tiny model then prefers different tokens for different audio.
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0.0, 0.4)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
