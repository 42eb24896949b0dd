"""Time-aware synchronised batch norm (``--sync-bn``): the conversion keeps the time fold."""

import copy
import logging

import pytest
import torch
from test_training import small_cfg, tiny_digits
from torch import nn

import xorsnn
from xorsnn.layers import TimeBatchNorm2d, TimeSyncBatchNorm, convert_sync_batchnorm
from xorsnn.training import DistContext, build_model_from_checkpoint, train
from xorsnn.training.trainer import _sync_bn


def test_conversion_keeps_the_time_fold_and_the_numbers():
    torch.manual_seed(0)
    model = xorsnn.create_model("xoresnet14", T=2, in_channels=1, num_classes=10, zero_init_residual=False)
    synced = convert_sync_batchnorm(copy.deepcopy(model))
    kinds = {type(m).__name__ for m in synced.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    assert kinds == {"TimeSyncBatchNorm", "SyncBatchNorm"}  # the blocks' time BNs, and the stem's plain BN
    assert all(m.time_rank == 5 for m in synced.modules() if isinstance(m, TimeSyncBatchNorm))
    x = torch.rand(4, 1, 28, 28)
    for mode in (True, False):  # train: batch statistics over (T, B, H, W); eval: the running ones
        model.train(mode), synced.train(mode)
        assert torch.equal(model(x), synced(x))
    assert list(model.state_dict()) == list(synced.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), synced.state_dict().values(),
                                                     strict=True))


def test_plain_sync_batchnorm_would_normalise_the_batch_dimension():
    """Why the converter exists: torch's own conversion normalises dim 1 of [T, B, C, H, W] (the batch)."""
    bn = nn.Sequential(TimeBatchNorm2d(3))
    x = torch.rand(2, 3, 3, 4, 4)
    with pytest.raises(AssertionError):  # B = 3 happens to equal C: torch's converter silently changes the math
        torch.testing.assert_close(nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(bn))(x), bn(x))
    torch.testing.assert_close(convert_sync_batchnorm(copy.deepcopy(bn))(x), bn(x), rtol=0, atol=0)


def test_unknown_batch_norms_are_refused_and_the_model_is_untouched():
    model = xorsnn.create_model("spikformer_4_256", T=1)
    before = [type(m) for m in model.modules()]
    with pytest.raises(ValueError, match=r"blocks\.0\.attn\.q\.bn: TokenBatchNorm reshapes its input"):
        convert_sync_batchnorm(model)
    assert [type(m) for m in model.modules()] == before
    with pytest.raises(ValueError, match="pass the network"):
        convert_sync_batchnorm(TimeBatchNorm2d(3))


def test_sync_bn_needs_cuda_in_a_multi_process_run():
    model = xorsnn.create_model("xoresnet8", T=1, in_channels=1)
    with pytest.raises(ValueError, match="sync_bn needs CUDA devices"):
        _sync_bn(model, DistContext(rank=0, world_size=2, device=torch.device("cpu")))


def test_a_single_process_run_with_sync_bn_warns_trains_and_saves_a_plain_checkpoint(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="xorsnn.train"):
        res = train(small_cfg(tmp_path, epochs=1, sync_bn=True), tiny_digits(n_train=128, n_test=64))
    assert "nothing to synchronise" in caplog.text
    assert res.final_test_acc == res.final_test_acc  # finite
    model, meta = build_model_from_checkpoint(tmp_path / "run", "cpu")
    assert meta["xorsnn_config"]["sync_bn"] is True
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())  # loads into the plain model
