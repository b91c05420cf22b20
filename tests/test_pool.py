"""cyclegan.pool.ImagePool: fill phase, swap statistics, RNG independence, checkpoint round trip."""

from __future__ import annotations

import pytest
import torch

from cyclegan.pool import ImagePool


def tagged(start: int, n: int) -> torch.Tensor:
    """A batch whose image i is filled with the value start + i, so outputs can be traced back."""
    return torch.arange(start, start + n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 4, 4).clone()


def tags(batch: torch.Tensor) -> list[int]:
    return [int(img[0, 0, 0]) for img in batch]


def test_fill_phase_returns_inputs() -> None:
    pool = ImagePool(pool_size=6, seed=0)
    for start in (0, 2, 4):
        out = pool.query(tagged(start, 2))
        assert tags(out) == [start, start + 1]
    assert len(pool) == 6


def test_fill_completes_mid_batch() -> None:
    pool = ImagePool(pool_size=3, seed=0)
    out = pool.query(tagged(0, 5))
    assert tags(out)[:3] == [0, 1, 2]
    assert len(pool) == 3
    assert out.shape == (5, 3, 4, 4)


def test_about_half_come_from_history() -> None:
    pool = ImagePool(pool_size=10, seed=123)
    pool.query(tagged(0, 10))
    n, from_history, next_id = 4000, 0, 10
    held = set(range(10))
    for _ in range(n // 4):
        batch = tagged(next_id, 4)
        out = pool.query(batch)
        for new, got in zip(tags(batch), tags(out)):
            if got != new:
                assert got in held  # a swapped-out image was in the pool
                held.remove(got)
                held.add(new)
                from_history += 1
        next_id += 4
        assert held == {int(img[0, 0, 0]) for img in pool.images}
    # Binomial(4000, 0.5): std ~ 31.6; allow 4 std.
    assert abs(from_history - n / 2) < 4 * (n * 0.25) ** 0.5


def test_zero_pool_is_passthrough_and_output_detached() -> None:
    x = torch.rand(2, 3, 4, 4, requires_grad=True)
    out = ImagePool(pool_size=0).query(x * 2)
    assert not out.requires_grad
    assert torch.equal(out, x.detach() * 2)
    assert not ImagePool(pool_size=2).query(x * 2).requires_grad


def test_independent_of_global_rng_and_seeded() -> None:
    def run(seed: int, global_seed: int) -> list[int]:
        torch.manual_seed(global_seed)
        pool = ImagePool(pool_size=4, seed=seed)
        out = []
        for i in range(0, 80, 2):
            out += tags(pool.query(tagged(i, 2)))
            torch.rand(7)  # other code using the global RNG
        return out

    assert run(1, 0) == run(1, 99)
    assert run(1, 0) != run(2, 0)


def test_state_dict_round_trip_continues_identically(tmp_path) -> None:
    pool = ImagePool(pool_size=5, seed=7)
    for i in range(0, 20, 2):
        pool.query(tagged(i, 2))
    path = tmp_path / "pool.pt"
    torch.save(pool.state_dict(), path)
    restored = ImagePool(pool_size=5, seed=999)
    restored.load_state_dict(torch.load(path, weights_only=True))
    assert all(t.device.type == "cpu" for t in pool.state_dict()["images"])
    for i in range(100, 140, 2):
        assert tags(pool.query(tagged(i, 2))) == tags(restored.query(tagged(i, 2)))
    with pytest.raises(ValueError, match="pool_size 5 .* uses 3"):
        ImagePool(pool_size=3).load_state_dict(pool.state_dict())


def test_accelerate_checkpointing_round_trip(tmp_path) -> None:
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    pool = ImagePool(pool_size=3, seed=0)
    accelerator.register_for_checkpointing(pool)
    pool.query(tagged(0, 4))
    accelerator.save_state(str(tmp_path / "ckpt"))
    expected = tags(pool.query(tagged(10, 6)))
    pool.query(tagged(50, 6))  # move on, then restore
    accelerator.load_state(str(tmp_path / "ckpt"))
    assert tags(pool.query(tagged(10, 6))) == expected
