"""Shared test fixtures: a tiny TorchScript FD extractor (no Inception offline) and `ssgen` run
in-process through main(), as a user runs it."""

import sys
import warnings

import pytest
import torch
from torch import nn

from ssgen.cli import main


class TinyExtractor(nn.Module):
    """uint8 [B,3,H,W] -> [B,12] features, like a real extractor's interface."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.conv(x.float() / 255.0))
        return torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1)


@pytest.fixture(autouse=True, scope="session")
def session_cache(tmp_path_factory):
    """ssgen's disk caches (decoded images, FD statistics) in a folder of this test session's own:
    tests write no data into the user's ~/.cache/ssgen and find nothing there from other runs.
    A test that sets SSGEN_CACHE itself (monkeypatch.setenv) still gets its own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSGEN_CACHE", str(tmp_path_factory.mktemp("ssgen-cache")))
        yield


@pytest.fixture
def extractor_file(tmp_path):
    """Path of a scripted TinyExtractor (metric name: FD(tiny-fd))."""
    torch.manual_seed(0)
    path = tmp_path / "tiny-fd.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script's deprecation notice
        torch.jit.script(TinyExtractor()).save(str(path))
    return path


@pytest.fixture
def ssgen(monkeypatch, capsys):
    """ssgen(*args) -> (exit code, stdout, stderr) of `ssgen ARGS` in this process. An exception
    that main() lets through (what the user would see as a traceback) fails the test."""
    def run(*args):
        monkeypatch.setattr(sys, "argv", ["ssgen", *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """SSGEN_CACHE (FD statistics, jigsaw permutation sets) in this test's own directory: nothing
    cached by another test, or by the user, is read. Returns that directory."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("SSGEN_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def one_thread():
    """Tiny convolutions on a shared CPU: a second thread costs more in contention than it gains.
    Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
