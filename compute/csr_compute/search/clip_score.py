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
    def image_embedding(self, image: Any) -> torch.Tensor:
        """The image's unit-length embedding (1-D)."""
        pixels = self.processor(images=image, return_tensors="pt")["pixel_values"].to(self.device, self.model.dtype)
        embeds = self.model.get_image_features(pixel_values=pixels)
        embeds = getattr(embeds, "pooler_output", embeds)
        return (embeds / embeds.norm(dim=-1, keepdim=True))[0]

    @torch.inference_mode()
    def text_embeddings(self, texts: list[str]) -> torch.Tensor:
        """Unit-length embeddings of ``texts``, one row each, in batches."""
        rows = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.processor.tokenizer(texts[start:start + self.batch_size], padding=True, truncation=True,
                                             max_length=self.max_text_tokens, return_tensors="pt").to(self.device)
            embeds = self.model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            embeds = getattr(embeds, "pooler_output", embeds)
            rows.append(embeds / embeds.norm(dim=-1, keepdim=True))
        return torch.cat(rows) if rows else torch.empty(0)

    @torch.inference_mode()
    def relevance(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> list[float]:
        """CLIP's image-text logits (logit scale x cosine) of each text row against the image."""
        if text_embeds.numel() == 0:
            return []
        return (self.model.logit_scale.exp() * text_embeds @ image_embeds).float().tolist()

    def score(self, image: Any, texts: list[str]) -> list[float]:
        if not texts:
            return []
        return self.relevance(self.image_embedding(image), self.text_embeddings(texts))
