"""Device selection (compute.device), and the deprecated data.device that forwards to it."""

from __future__ import annotations

import importlib
import warnings

import pytest

from compute.device import faiss_gpu_available, torch_device


def test_torch_device_cpu_path(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.delenv("STYLEREC_DEVICE", raising=False)
    assert torch_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert torch_device() == torch.device("cpu")
    assert torch_device("cuda") == torch.device("cpu")  # falls back, does not fail
    monkeypatch.setenv("STYLEREC_DEVICE", "cuda:1")
    assert torch_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert torch_device() == torch.device("cuda:1")


def test_faiss_gpu_available_is_a_plain_bool(monkeypatch: pytest.MonkeyPatch) -> None:
    faiss = pytest.importorskip("faiss")
    assert faiss_gpu_available() is (getattr(faiss, "get_num_gpus", lambda: 0)() > 0)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 2, raising=False)
    assert faiss_gpu_available() is True

    def broken() -> int:
        raise RuntimeError("driver mismatch")

    monkeypatch.setattr(faiss, "get_num_gpus", broken, raising=False)
    assert faiss_gpu_available() is False


def test_data_device_still_imports_with_a_deprecation_warning() -> None:
    old = importlib.import_module("data.device")
    with pytest.warns(DeprecationWarning, match="compute.device.torch_device"):
        from data.device import torch_device as old_torch_device
    assert old_torch_device is torch_device
    with pytest.warns(DeprecationWarning, match="compute.device.faiss_gpu_available"):
        assert old.faiss_gpu_available is faiss_gpu_available
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match="no attribute 'nothing'"):
            _ = old.nothing
