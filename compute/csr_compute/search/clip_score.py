"""Image-text relevance with a CLIP model: ``logits_per_image`` (logit scale x cosine, 100 x cos for OpenAI CLIP)."""

from __future__ import annotations

from typing import Any

import torch


class ClipScorer:
    """Scores many sentences against one image in batches.

    Sentences are truncated to the text tower's position limit (77 tokens for OpenAI CLIP); the
    reference code did not truncate and would crash on a long sentence. The image is encoded once.
    """

    def __init__(self, model: Any, processor: Any, device: str, batch_size: int = 64):
        self.model, self.processor, self.device, self.batch_size = model, processor, device, batch_size
        self.max_text_tokens = int(model.config.text_config.max_position_embeddings)

    @torch.inference_mode()
    def score(self, image: Any, texts: list[str]) -> list[float]:
        if not texts:
            return []
        pixels = self.processor(images=image, return_tensors="pt")["pixel_values"].to(self.device, self.model.dtype)
        image_embeds = self.model.get_image_features(pixel_values=pixels)
        image_embeds = getattr(image_embeds, "pooler_output", image_embeds)
        image_embeds = image_embeds / image_embeds.norm(dim=-1, keepdim=True)
        scale = self.model.logit_scale.exp()
        scores: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.processor.tokenizer(texts[start:start + self.batch_size], padding=True, truncation=True,
                                             max_length=self.max_text_tokens, return_tensors="pt").to(self.device)
            text_embeds = self.model.get_text_features(input_ids=batch["input_ids"],
                                                       attention_mask=batch["attention_mask"])
            text_embeds = getattr(text_embeds, "pooler_output", text_embeds)
            text_embeds = text_embeds / text_embeds.norm(dim=-1, keepdim=True)
            scores.extend((scale * text_embeds @ image_embeds[0]).float().tolist())
        return scores
