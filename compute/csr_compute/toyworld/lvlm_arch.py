"""The tiny LVLM's architecture and processor: LLaVA-1.5's, shrunk (CLIP vision tower, MLP projector, Llama).

Nothing here is toy-specific code: the folder it saves loads through
``LlavaForConditionalGeneration`` / ``AutoProcessor`` exactly like ``llava-hf/llava-1.5-7b-hf``.
"""

from __future__ import annotations

from typing import Any

from .config import WorldConfig
from .scenes import IMAGE_SIZE

# llava-hf/llava-1.5-7b-hf's chat template: "USER: <image>\n{text} ASSISTANT:".
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}"
    "{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

# CLIP's normalisation constants, as in every CLIP image processor.
IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]
IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]
# LLaVA-1.5 drops the CLS token ("default" strategy); the processor must count it, then drop it.
VISION_FEATURE_SELECT = "default"


def vision_config(cfg: WorldConfig, hidden: int) -> Any:
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        hidden_size=hidden, intermediate_size=hidden * 4, num_hidden_layers=cfg.vision_layers,
        num_attention_heads=4, image_size=IMAGE_SIZE, patch_size=cfg.patch_size, projection_dim=hidden,
    )


def image_processor() -> Any:
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_mean=IMAGE_MEAN, image_std=IMAGE_STD, do_convert_rgb=True,
    )


def build_processor(cfg: WorldConfig, tokenizer: Any) -> Any:
    from transformers import LlavaProcessor

    return LlavaProcessor(
        image_processor=image_processor(), tokenizer=tokenizer, patch_size=cfg.patch_size,
        vision_feature_select_strategy=VISION_FEATURE_SELECT, num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE, image_token="<image>",
    )


def build_model(cfg: WorldConfig, tokenizer: Any) -> Any:
    from transformers import GenerationConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.text_hidden, intermediate_size=cfg.text_hidden * 3,
        num_hidden_layers=cfg.text_layers, num_attention_heads=4, num_key_value_heads=4,
        max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )
    image_tokens = (IMAGE_SIZE // cfg.patch_size) ** 2
    config = LlavaConfig(
        vision_config=vision_config(cfg, cfg.vision_hidden), text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), image_seq_length=image_tokens,
        vision_feature_layer=-1, vision_feature_select_strategy=VISION_FEATURE_SELECT,
        projector_hidden_act="gelu", pad_token_id=tokenizer.pad_token_id,
    )
    model = LlavaForConditionalGeneration(config)
    # Without a length, generate() falls back to max_length=20 tokens, prompt included.
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, max_new_tokens=128, do_sample=False,
    )
    return model
