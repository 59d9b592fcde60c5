"""Training pieces of the toy world: labels, grounding targets, and that a few steps change the models."""

import numpy as np
import torch
from PIL import Image

from csr_compute.models import LoadedLvlm
from csr_compute.toyworld import lvlm_arch, lvlm_train, sft_data, tiny_clip
from csr_compute.toyworld import tokenizer as tokenizers
from csr_compute.toyworld.config import WorldConfig
from csr_compute.toyworld.scenes import render, sample_objects

CFG = WorldConfig(text_layers=1, vision_layers=1)


def _scenes(count, seed=0):
    rng = np.random.default_rng(seed)
    objects, images = [], []
    for _ in range(count):
        scene = sample_objects(rng, 0.85)
        image, _ = render(scene, rng)
        objects.append(scene)
        images.append(image)
    return objects, torch.from_numpy(np.stack(images))


def _data(objects, images):
    tokenizer = tokenizers.build("lvlm")
    processor = lvlm_arch.build_processor(CFG, tokenizer)
    examples = sft_data.make_examples(objects, np.random.default_rng(1), 0.6, 0.15)
    grounding = sft_data.cell_targets(objects, tokenizer, CFG.patch_size)
    prompt_text = LoadedLvlm(model=None, processor=processor, device="cpu").prompt_text
    data = sft_data.Tokenised(examples, processor, prompt_text, Image.fromarray(images[0].numpy()), grounding,
                              ground_questions=True, answer_weight=5.0)
    return tokenizer, processor, examples, data


def test_grounding_targets_name_each_cells_object():
    tokenizer = tokenizers.build("lvlm")
    objects = [[{"name": "cup", "color": "red", "size": "small", "position": "bottom left"}]]
    targets = sft_data.cell_targets(objects, tokenizer, patch_size=32)
    assert targets.shape == (1, 1, 4)
    words = [tokenizer.convert_ids_to_tokens(int(t)) if t >= 0 else None for t in targets[0, 0]]
    assert words == [None, None, "cup", None]
    # With 16-pixel patches a cell covers four patches, all with the cell's target.
    assert (sft_data.cell_targets(objects, tokenizer, patch_size=16)[0, 0] >= 0).sum() == 4


def test_labels_score_the_response_and_the_grounding_positions_only():
    objects, images = _scenes(4)
    tokenizer, processor, examples, data = _data(objects, images)
    batch = data.batch(np.array([0, 1]))
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    for row, example in enumerate(examples[:2]):
        ids, labels = batch["input_ids"][row], batch["labels"][row]
        prompt_length = len(data.prompts[row])
        response = tokenizer(example.response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        assert labels[prompt_length:prompt_length + len(response)].tolist() == response
        image_positions = (ids == image_token).nonzero().flatten()
        scored_in_prompt = set((labels[:prompt_length] != -100).nonzero().flatten().tolist())
        grounded = set((image_positions + 1).tolist())
        assert len(scored_in_prompt & grounded) == len(objects[0]), "one grounding label per occupied cell"
        question = scored_in_prompt - grounded
        if "Is there a" in example.instruction:
            # The output at the asked kind is trained to give the answer too.
            (position,) = question
            kind = tokenizer.convert_ids_to_tokens(int(ids[position - 1]))
            assert f"Is there a {kind} in" in example.instruction
            assert labels[position] == response[0]
            assert batch["weights"][row, [position, prompt_length]].tolist() == [5.0, 5.0]
        else:
            assert not question, "a description's prompt has no question target"
        assert batch["attention_mask"][row].sum() == prompt_length + len(response)
        assert set(batch["weights"][row][labels == -100].tolist()) == {0.0}


def test_weighted_loss_is_the_models_own_loss_when_all_weights_are_one():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[-100, 1, 2, -100, 3], [-100, -100, 4, 5, -100]])
    weights = (labels != -100).float()
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 7), labels[:, 1:].reshape(-1))
    assert torch.allclose(lvlm_train.weighted_loss(logits, labels, weights), expected)
    heavier = weights.clone()
    heavier[0, 2] = 5.0
    assert not torch.allclose(lvlm_train.weighted_loss(logits, labels, heavier), expected)


def test_a_few_lvlm_steps_lower_the_loss_and_change_every_part():
    objects, images = _scenes(64)
    tokenizer, processor, _, data = _data(objects, images)
    torch.manual_seed(0)
    model = lvlm_arch.build_model(CFG, tokenizer)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    losses = lvlm_train.train(model, data, images, steps=12, batch_size=16, lr=3e-3, rng=np.random.default_rng(0))
    assert len(losses) == 12 and np.mean(losses[-3:]) < losses[0]
    for part in ("vision_tower.embeddings.patch_embedding", "multi_modal_projector.linear_1", "embed_tokens", "lm_head"):
        name = next(n for n in before if part in n)
        assert not torch.equal(before[name], dict(model.named_parameters())[name]), f"{name} did not change"


def test_a_few_clip_steps_lower_the_loss_and_change_both_towers():
    objects, images = _scenes(64)
    tokenizer = tokenizers.build("clip")
    torch.manual_seed(0)
    model, _ = tiny_clip.build(CFG, tokenizer)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    losses = tiny_clip.train(model, tokenizer, objects, images, steps=10, batch_size=16, lr=3e-3,
                             rng=np.random.default_rng(0))
    assert np.mean(losses[-3:]) < losses[0]
    for part in ("vision_model.embeddings.patch_embedding", "text_model.embeddings.token_embedding",
                 "visual_projection", "text_projection"):
        name = next(n for n in before if part in n)
        assert not torch.equal(before[name], dict(model.named_parameters())[name]), f"{name} did not change"
