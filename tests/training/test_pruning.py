"""Rank pruning by rank-1 importance, on a briefly trained tiny 2-style adapter of rank 4."""

import sys
from pathlib import Path

import pytest
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from tiny_styles import tiny_setup  # noqa: E402

from engine.adapters.moe import MoELoraAdapter, MoELoraConfig  # noqa: E402
from engine.core.errors import InputError  # noqa: E402
from engine.models.backbones.embedded.backbone import EmbeddedBackbone  # noqa: E402
from engine.training.pruning import (  # noqa: E402
    PruningConfig,
    PruningReport,
    choose_pruned,
    clean_psnr,
    exact_importance,
    live_ranks,
    mean_psnr,
    prune,
    prune_adapter,
    scoring_batches,
    set_masks,
    shared_label,
    taylor_importance,
    unprune,
)
from engine.training.style_trainer import StyleTrainingConfig  # noqa: E402

RANK, SHARED, STYLES = 4, 2, 2


def snapshot(adapter) -> dict[str, torch.Tensor]:
    # Cloned: adapter.state_dict() of float32 tensors shares their storage.
    return {name: tensor.clone() for name, tensor in adapter.state_dict().items()}


@pytest.fixture(scope="module")
def trained():
    settings = StyleTrainingConfig(steps=60, batch_size=4, learning_rate=3e-2, warmup_steps=5, checkpoint_every=0)
    backbone, adapter, trainer = tiny_setup(settings, adapter_config=MoELoraConfig(rank=RANK, num_shared_experts=SHARED))
    trainer.train()
    return backbone, adapter, trainer, snapshot(adapter)


@pytest.fixture
def setup(trained):
    backbone, adapter, trainer, state = trained
    adapter.load_state_dict(state)  # every test starts from the trained, unpruned adapter
    return backbone, adapter, trainer, scoring_batches(backbone, trainer.styles, PruningConfig())


def live_count(adapter) -> int:
    return sum(PruningReport.layer_ranks(live_ranks(adapter)).values())


def test_masking_a_component_removes_exactly_its_rank_one_term(setup):
    _, adapter, _, _ = setup
    name, layer = next(iter(adapter.layers.items()))
    key = adapter.style_keys[0]
    adapter.route({key: 0.7})
    scale = adapter.config.scale
    before = layer.delta_weight().detach()
    x = torch.randn(3, layer.in_features, generator=torch.Generator().manual_seed(0))
    output_before = layer(x).detach()
    gate = layer.gates()[0, 1].item()  # shared expert 1's gate under this style mix
    set_masks(adapter, [(name, key, 2), (name, shared_label(1), 0)], 0.0)
    style_term = 0.7 * scale * torch.outer(layer.style_up[key][:, 2], layer.style_down[key][2])
    shared_term = gate * scale * torch.outer(layer.shared_up[1][:, 0], layer.shared_down[1][0])
    expected = before - style_term - shared_term
    torch.testing.assert_close(layer.delta_weight().detach(), expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(layer(x).detach(), output_before - x @ (style_term + shared_term).T, atol=1e-5, rtol=1e-5)
    assert style_term.abs().max() > 1e-4 and shared_term.abs().max() > 1e-4  # a real change was checked
    adapter.clear_routing()


def test_prune_at_half_keeps_half_globally_and_can_be_undone(setup):
    backbone, adapter, _, batches = setup
    config = PruningConfig(keep_fraction=0.5)
    weights = snapshot(adapter)
    layers = len(adapter.layers)
    total = layers * (STYLES + SHARED) * RANK
    report = prune_adapter(adapter, backbone, batches, config)

    assert live_count(adapter) == total // 2 and len(report.pruned) == total // 2
    assert all(rank >= 1 for ranks in report.ranks_after.values() for rank in ranks.values())
    assert len(set(PruningReport.layer_ranks(report.ranks_after).values())) > 1  # global: ranks differ per layer
    assert set(PruningReport.layer_ranks(report.ranks_before).values()) == {(STYLES + SHARED) * RANK}
    cost = {name: layer.in_features + layer.out_features for name, layer in adapter.layers.items()}
    assert report.parameters_after == report.parameters_before - sum(cost[layer] for layer, _, _ in report.pruned)
    assert report.parameters_after == adapter.parameter_count() < report.parameters_before
    # Only masks changed: the pruned a_i, b_i are intact, so unpruning restores the adapter exactly.
    for name, tensor in adapter.state_dict().items():
        if "mask" not in name:
            assert torch.equal(tensor, weights[name]), name
    unprune(adapter, report)
    assert live_count(adapter) == total
    assert mean_psnr(adapter, backbone, batches, config.timesteps) == pytest.approx(report.psnr_before, abs=1e-6)


def test_minimum_rank_per_expert_wins_over_the_budget(setup):
    backbone, adapter, _, batches = setup
    report = prune_adapter(adapter, backbone, batches, PruningConfig(keep_fraction=0.05, min_rank_per_expert=1))
    assert {rank for ranks in report.ranks_after.values() for rank in ranks.values()} == {1}


def test_only_the_chosen_experts_are_pruned(setup):
    backbone, adapter, _, batches = setup
    key, other = adapter.style_keys
    report = prune_adapter(adapter, backbone, batches, PruningConfig(keep_fraction=0.5, styles=(key,), shared=False))
    assert {label for _, label, _ in report.pruned} == {key}
    assert all(ranks[other] == RANK and ranks[shared_label(0)] == RANK for ranks in report.ranks_after.values())
    with pytest.raises(InputError, match="no scoring data"):
        prune_adapter(adapter, backbone, batches, PruningConfig(styles=("xnothere",)))


def test_parameter_budget_is_filled_greedily(setup):
    backbone, adapter, _, batches = setup
    budget = adapter.parameter_count() // 3
    report = prune_adapter(adapter, backbone, batches, PruningConfig(parameter_budget=budget))
    largest = max(layer.in_features + layer.out_features for layer in adapter.layers.values())
    assert budget - largest < report.parameters_after <= budget
    with pytest.raises(InputError, match="below"):
        prune_adapter(adapter, backbone, batches, PruningConfig(parameter_budget=1000))


def test_importance_pruning_loses_less_psnr_than_random_pruning(setup):
    backbone, adapter, _, batches = setup
    config = PruningConfig(keep_fraction=0.5)
    state = snapshot(adapter)
    report = prune_adapter(adapter, backbone, batches, config)
    importance_loss = report.psnr_before - report.psnr_after
    random_losses = []
    for seed in range(4):  # the same budget and minimum ranks, random scores
        adapter.load_state_dict(state)
        draws = torch.rand(len(report.scores), generator=torch.Generator().manual_seed(seed)).tolist()
        pruned = choose_pruned(adapter, dict(zip(report.scores, draws)), config)
        assert len(pruned) == len(report.pruned)
        set_masks(adapter, pruned, 0.0)
        random_losses.append(report.psnr_before - mean_psnr(adapter, backbone, batches, config.timesteps))
    random_loss = sum(random_losses) / len(random_losses)
    assert random_loss > 0.01  # pruning half at random does cost quality here
    assert importance_loss < 0.5 * random_loss


def test_taylor_scores_rank_components_as_exact_masking_does(setup):
    backbone, adapter, _, batches = setup
    config = PruningConfig()
    scores = taylor_importance(adapter, backbone, batches, config)
    subset = list(scores)[::11]  # 25 components across every layer and expert kind
    exact = exact_importance(adapter, backbone, batches, config, subset)
    correlation = spearmanr([scores[c] for c in subset], [exact[c] for c in subset])[0]
    assert correlation > 0.8
    assert all(not layer.shared_mask.requires_grad and layer.shared_mask.grad is None for layer in adapter.layers.values())


def test_taylor_score_is_the_derivative_of_psnr_in_the_mask(setup):
    backbone, adapter, _, batches = setup
    config = PruningConfig(timesteps=(0.5,))
    name = "single_transformer_blocks.0.proj_out"
    component = (name, shared_label(0), 1)
    score = taylor_importance(adapter, backbone, batches[:1], config)[component]
    mask = adapter.layers[name].shared_mask

    def psnr_at(value: float) -> float:
        with torch.no_grad():
            mask[0, 1] = value
            return clean_psnr(adapter, backbone, batches[0], 0.5).item()

    def central_difference(step: float) -> float:  # at m_i = 1; error O(step^2)
        return (psnr_at(1 + step) - psnr_at(1 - step)) / (2 * step)

    # Steps large enough that float32 rounding of ~16 dB is far below the difference; Richardson
    # extrapolation of the two cancels the step^2 term, which alone is 20 % here at step 0.2.
    derivative = (4 * central_difference(0.1) - central_difference(0.2)) / 3
    psnr_at(1.0)
    assert abs(derivative) > 1e-4
    assert score == pytest.approx(abs(derivative), rel=0.05)


def component_vectors(layer, label: str, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a_i, b_i)`` of one component."""
    if label.startswith("shared:"):
        expert = int(label.split(":")[1])
        return layer.shared_down[expert][index].clone(), layer.shared_up[expert][:, index].clone()
    return layer.style_down[label][index].clone(), layer.style_up[label][:, index].clone()


def test_prune_with_finetune_recovers_and_leaves_pruned_components_untouched(setup):
    _, adapter, trainer, _ = setup
    every = [(name, label, index) for name, ranks in live_ranks(adapter).items() for label in ranks for index in range(RANK)]
    before = {c: component_vectors(adapter.layers[c[0]], c[1], c[2]) for c in every}
    report = prune(trainer, PruningConfig(keep_fraction=0.25, finetune_steps=10))
    assert report.psnr_finetuned > report.psnr_after
    assert live_count(adapter) == len(every) - len(report.pruned)  # training did not revive a mask
    changed = set()
    for component in every:
        after = component_vectors(adapter.layers[component[0]], component[1], component[2])
        if not all(torch.equal(x, y) for x, y in zip(after, before[component])):
            changed.add(component)
    assert changed and not changed & set(report.pruned)  # zero gradient through a zero mask


def test_masks_survive_saving_and_loading(setup, tmp_path):
    backbone, adapter, _, batches = setup
    prune_adapter(adapter, backbone, batches, PruningConfig(keep_fraction=0.5))
    path = tmp_path / "pruned.safetensors"
    adapter.save(path)
    loaded = MoELoraAdapter.load(path, EmbeddedBackbone.from_config("tiny", seed=0))
    assert live_ranks(loaded) == live_ranks(adapter)
    assert loaded.parameter_count() == adapter.parameter_count()
    for name, tensor in adapter.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
