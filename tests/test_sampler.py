"""EpochBatchSampler: order from (seed, epoch) only, mid-epoch resumption, rank slices, tiny-corpus top-up."""

from __future__ import annotations

import pytest

from gankit.data.sampler import DomainBalancedSampler, EpochBatchSampler, SampleKey
from gankit.errors import DataError


def epoch(sampler: EpochBatchSampler, e: int, skip: int = 0) -> list[list[SampleKey]]:
    sampler.set_epoch(e, skip_samples=skip)
    return list(sampler)


def indices(batches: list[list[SampleKey]]) -> list[int]:
    return [k.index for batch in batches for k in batch]


def test_reproducible_per_seed_and_epoch_and_different_across_epochs() -> None:
    a, b = EpochBatchSampler(100, 8, seed=1), EpochBatchSampler(100, 8, seed=1)
    assert epoch(a, 3) == epoch(b, 3)
    assert indices(epoch(a, 0)) != indices(epoch(a, 1))
    assert indices(epoch(a, 0)) != indices(epoch(EpochBatchSampler(100, 8, seed=2), 0))


def test_an_epoch_is_a_permutation_with_the_last_partial_batch_dropped() -> None:
    sampler = EpochBatchSampler(100, 8, seed=0)
    batches = epoch(sampler, 0)
    assert len(batches) == len(sampler) == 12 and all(len(b) == 8 for b in batches)
    flat = indices(batches)
    assert len(set(flat)) == 96 and [k.position for b in batches for k in b] == list(range(96))
    assert all(k.epoch == 0 for b in batches for k in b)
    ordered = EpochBatchSampler(10, 5, seed=0, shuffle=False)
    assert indices(epoch(ordered, 4)) == list(range(10))


def test_skip_samples_resumes_with_the_tail_of_the_full_epoch() -> None:
    sampler = EpochBatchSampler(50, 4, seed=7)
    full = epoch(sampler, 2)
    assert epoch(sampler, 2, skip=5 * 4) == full[5:]
    assert epoch(sampler, 2, skip=len(full) * 4) == []
    assert epoch(sampler, 2, skip=10_000) == []
    assert epoch(sampler, 2) == full  # set_epoch without skip starts over


def test_ranks_together_see_exactly_what_one_process_with_the_global_batch_sees() -> None:
    world, per_rank = 3, 4
    single = epoch(EpochBatchSampler(101, per_rank * world, seed=5), 1)
    ranks = [epoch(EpochBatchSampler(101, per_rank, seed=5, rank=r, world_size=world), 1) for r in range(world)]
    assert all(len(r) == len(single) for r in ranks)
    for j, global_batch in enumerate(single):
        assert [k for r in ranks for k in r[j]] == global_batch  # rank r holds slice [r·B, (r+1)·B)


def test_resuming_with_another_world_size_continues_at_the_same_position() -> None:
    one = EpochBatchSampler(64, 8, seed=3)
    full = [k for b in epoch(one, 0) for k in b]
    done = 2 * 8  # two batches of 8 in one process, then resume on two ranks of 4
    ranks = [epoch(EpochBatchSampler(64, 4, seed=3, rank=r, world_size=2), 0, skip=done) for r in range(2)]
    resumed = [k for j in range(len(ranks[0])) for r in ranks for k in r[j]]
    assert resumed == full[done:]


def test_tiny_corpus_is_topped_up_with_replacement() -> None:
    sampler = EpochBatchSampler(3, 8, seed=0, min_batches=2)
    assert sampler.topped_up == 13 and len(sampler) == 2
    batches = epoch(sampler, 0)
    assert [len(b) for b in batches] == [8, 8]
    flat = indices(batches)
    assert sorted(flat[:3]) == [0, 1, 2] and set(flat) <= {0, 1, 2}  # every item once, then draws
    assert indices(epoch(sampler, 1)) != flat
    big = EpochBatchSampler(100, 8, seed=0, min_batches=2)
    assert big.topped_up == 0 and len(big) == 12


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(DataError):
        EpochBatchSampler(0, 4, seed=0)
    with pytest.raises(ValueError):
        EpochBatchSampler(10, 4, seed=0, rank=2, world_size=2)
    with pytest.raises(ValueError):
        EpochBatchSampler(10, 4, seed=0).set_epoch(0, skip_samples=-1)


# Three domains of unequal size: 0 has 20 items, 1 has 7, 2 has 11 (interleaved, as a real list would be).
DOMAINS = [0] * 20 + [1] * 7 + [2] * 11
DOMAINS = [DOMAINS[(i * 7) % len(DOMAINS)] for i in range(len(DOMAINS))]


def test_domain_balanced_batches_hold_every_domain_equally_on_every_rank() -> None:
    for world in (1, 2):
        for r in range(world):
            sampler = DomainBalancedSampler(DOMAINS, 6, seed=4, rank=r, world_size=world)
            batches = epoch(sampler, 0)
            assert batches and len(batches) == len(sampler)
            for batch in batches:
                assert sorted(DOMAINS[k.index] for k in batch) == [0, 0, 1, 1, 2, 2]
    # The largest domain sets the epoch's length and is visited once, without repetition.
    sampler = DomainBalancedSampler(DOMAINS, 6, seed=4)
    assert len(sampler) == 20 // 2
    largest = [k.index for b in epoch(sampler, 0) for k in b if DOMAINS[k.index] == 0]
    assert sorted(largest) == [i for i, d in enumerate(DOMAINS) if d == 0]
    assert sampler.topped_up == (20 - 7) + (20 - 11)
    assert indices(epoch(sampler, 0)) != indices(epoch(sampler, 1))


def test_domain_balanced_ranks_see_what_one_process_sees_and_resume_across_world_sizes() -> None:
    single = DomainBalancedSampler(DOMAINS, 6, seed=9)
    ranks = [DomainBalancedSampler(DOMAINS, 3, seed=9, rank=r, world_size=2) for r in range(2)]
    whole = epoch(single, 2)
    parts = [epoch(s, 2) for s in ranks]
    for j, batch in enumerate(whole):
        union = sorted(k for r in parts for k in r[j])
        assert union == sorted(batch)  # same items with the same SampleKey (crop) in either layout
    done = 3 * 6
    resumed = [epoch(s, 2, skip=done) for s in ranks]
    assert [sorted(k for r in resumed for k in r[j]) for j in range(len(resumed[0]))] == [
        sorted(b) for b in whole[3:]
    ]


def test_domain_balanced_refuses_a_batch_that_cannot_hold_every_domain() -> None:
    with pytest.raises(DataError, match="multiple of the 3 domains"):
        DomainBalancedSampler(DOMAINS, 4, seed=0)
