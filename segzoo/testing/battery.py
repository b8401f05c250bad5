"""``HeadBattery``: the checks every segzoo head passes, for built-in and third-party heads alike.

A plug-in author tests a head with one class (pytest collects the battery's tests through it)::

    from segzoo.testing import HeadBattery

    class TestMyHead(HeadBattery):
        head = "myhead"                      # the name in the segzoo.heads entry-point group
        kwargs = {"width": 64}               # head arguments (optional)

Each test builds ``<head>_<backbone>`` (a small ResNet-18 by default) with ``create_model`` and checks: eval
outputs at the input's size for odd sizes on every structure (dilated output stride 8 and 16, JPU), training
outputs and a backward pass that reaches every parameter (DDP needs no ``find_unused_parameters``), the aux
head, a ``save_pretrained`` / ``local-dir:`` round trip of every parameter and buffer, ``optimize_for_inference``
keeping the outputs, deterministic eval, the ``classifier`` naming convention, greyscale and 4-band models
(``in_chans``), ``torch.compile(fullgraph=True)`` and an ONNX export with dynamic height and width run in
onnxruntime at another size. Needs pytest (and onnx, onnxscript, onnxruntime for the export check:
``pip install segzoo[onnx]``).

The checks of eval sizes, save / load and folding run once per structure: the first structure (the head's
default) as a plain test, the others marked ``slow`` (register the marker in your pytest configuration; segzoo's
own default run leaves them out and CI runs them after it).
"""
from __future__ import annotations

from typing import Any, ClassVar, Mapping

import pytest
import torch
from torch import nn

from ..errors import ConfigError
from ..factory import create_model
from ..inference.optimize import optimize_for_inference
from ..model import input_channels
from ..weights.checkpoint import save_pretrained

__all__ = ["HeadBattery", "randomize_batch_norm", "switch_on_zero_initialised", "DILATED_AND_JPU"]

SIZES = [(64, 64), (97, 131), (33, 47)]
DILATED_AND_JPU = ({"output_stride": 8}, {"output_stride": 16}, {"neck": "jpu"})


def randomize_batch_norm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm running statistics and affine parameters away from (0, 1), so that folding them into
    a convolution changes its weights (freshly made layers would fold to the identity). Returns ``model``."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
                shape = module.running_mean.shape
                module.running_mean.copy_(torch.rand(shape, generator=generator) - 0.5)
                module.running_var.copy_(torch.rand(shape, generator=generator) * 1.5 + 0.5)
                if module.affine:
                    module.weight.copy_(1 + 0.2 * torch.randn(shape, generator=generator))
                    module.bias.copy_(0.2 * torch.randn(shape, generator=generator))
    return model


def switch_on_zero_initialised(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give small random values to parameters that start at zero (attention gammas, zero-initialised output
    projections): at zero those branches add nothing, and a comparison of outputs would not see them."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                parameter.copy_(0.5 + 0.2 * torch.randn(parameter.shape, generator=generator))
    return model


def _structure_id(structure: dict[str, Any]) -> str:
    """``{"output_stride": 8}`` -> ``os8``, ``{"neck": "jpu"}`` -> ``jpu``: the test id of a structure."""
    parts = [f"os{value}" if key == "output_stride" else str(value) if key == "neck" else f"{key}={value}"
             for key, value in structure.items()]
    return "-".join(parts) or "default"


def _tensors(outputs) -> list[torch.Tensor]:
    """Every tensor in nested dicts and lists (a mask classification head's training outputs)."""
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    values = outputs.values() if isinstance(outputs, Mapping) else outputs
    return [tensor for value in values for tensor in _tensors(value)]


def _images(model: nn.Module, batch: int, height: int, width: int) -> torch.Tensor:
    """Random normalised images of the model's ``in_chans``."""
    return torch.randn(batch, input_channels(model), height, width)


class HeadBattery:
    """Subclass with ``head`` (and optionally the other class attributes) to run every check on a head.

    Class attributes:
        head: The head's registered name.
        kwargs: Head arguments.
        backbone: timm backbone of the test models (small by default).
        num_classes: Classes of the test models.
        structures: ``create_model`` arguments of each backbone structure to check (the first is the default).
        extra_train_outputs: Deep-supervision outputs the head adds in training (before the aux head).
        aux_outputs: Aux outputs with ``aux=True`` (1: segzoo's FCN aux head; more if the head makes its own).

    To leave a check out, set its test to None in the subclass (``test_onnx_export_runs_at_other_sizes = None``).
    """

    head: ClassVar[str]
    kwargs: ClassVar[dict[str, Any]] = {}
    backbone: ClassVar[str] = "resnet18"
    num_classes: ClassVar[int] = 3
    structures: ClassVar[tuple[dict[str, Any], ...]] = DILATED_AND_JPU
    extra_train_outputs: ClassVar[int] = 0
    aux_outputs: ClassVar[int] = 1

    def pytest_generate_tests(self, metafunc):
        """A check that takes ``structure`` runs once per structure: the first (the head's default) in the default
        run, the others marked ``slow`` (variants of the same check; ``pytest -m slow`` runs them)."""
        if "structure" in metafunc.fixturenames:
            cases = [pytest.param(structure, id=_structure_id(structure),
                                  marks=() if index == 0 else (pytest.mark.slow,))
                     for index, structure in enumerate(self.structures)]
            metafunc.parametrize("structure", cases)

    def build(self, structure=None, **kwargs):
        """A seeded test model of the head on ``structure`` (default the first)."""
        torch.manual_seed(0)
        structure = structure or self.structures[0]
        return create_model(f"{self.head}_{self.backbone}", num_classes=self.num_classes, **structure,
                            **{**self.kwargs, **kwargs})

    def test_eval_forward_at_any_size(self, structure):
        model = self.build(structure)  # built once: building is most of the test's time
        for size in SIZES:
            out = model(_images(model, 1, *size))
            assert isinstance(out, torch.Tensor) and out.shape == (1, self.num_classes, *size), size
            assert torch.isfinite(out).all(), size

    @pytest.mark.parametrize("aux", [False, True])
    def test_train_outputs_and_backward_reach_every_parameter(self, aux):
        model = self.build(aux=aux).train()
        outputs = model(_images(model, 2, 64, 72))
        if isinstance(outputs, Mapping):  # a mask classification head's per-query outputs, for its matching loss
            outputs = tuple(_tensors(outputs))
            assert outputs and all(o.shape[0] == 2 for o in outputs)
        else:
            expected = 1 + self.extra_train_outputs + (self.aux_outputs if aux else 0)
            assert isinstance(outputs, tuple) and len(outputs) == expected
            assert all(o.shape == (2, self.num_classes, 64, 72) for o in outputs)
        sum(o.square().mean() for o in outputs).backward()
        unused = [name for name, p in model.named_parameters() if p.grad is None]
        assert not unused  # DDP needs no find_unused_parameters
        assert (model.aux_head is not None) == (aux and not model.head.handles_aux)

    def test_save_load_round_trip(self, structure, tmp_path):
        """Every parameter and buffer comes back. BatchNorm statistics and the zero-initialised parameters are
        randomised first: at their fresh values a loader that dropped them would rebuild them unnoticed."""
        model = switch_on_zero_initialised(randomize_batch_norm(self.build(structure, aux=True)))
        images = _images(model, 1, 50, 66)
        save_pretrained(model, tmp_path / "saved")
        loaded = create_model(f"local-dir:{tmp_path / 'saved'}")
        saved, restored = model.state_dict(), loaded.state_dict()
        assert restored.keys() == saved.keys()
        not_restored = [key for key in saved if not torch.equal(restored[key], saved[key])]
        assert not not_restored, f"not restored: {', '.join(not_restored)}"
        assert torch.equal(loaded(images), model(images))

    def test_optimize_for_inference_keeps_the_outputs(self, structure):
        model = randomize_batch_norm(self.build(structure, aux=True)).eval()
        fast = optimize_for_inference(model)
        # some BatchNorm of the head is folded into a convolution (after it, or before a 1x1 one: the head's own, or
        # the neck's last one where the head starts with its BatchNorm), where it has one
        def batch_norms(head):
            return sum(isinstance(m, nn.BatchNorm2d) for m in head.modules())

        if batch_norms(model.head):
            assert batch_norms(fast.head) < batch_norms(model.head)
        for size in ((64, 64), (45, 61)):
            images = _images(model, 2, *size)
            with torch.inference_mode():
                expected = model(images)
                torch.testing.assert_close(fast(images), expected, rtol=1e-4,
                                           atol=1e-5 * expected.abs().max().item())

    def test_eval_is_deterministic(self):
        model = self.build()
        images = _images(model, 1, 45, 61)
        with torch.no_grad():
            assert torch.equal(model(images), model(images))

    def test_classifiers_are_found_for_num_classes_changes(self):
        model = self.build(aux=True)
        keys = model.classifier_keys()
        assert keys and all(model.state_dict()[k].shape[0] == self.num_classes for k in keys)

    def test_torch_compile_fullgraph_matches_eager(self):
        """Dynamo's capture and AOTAutograd as one graph, without code generation (fast; inductor uses the same
        graph). Run on the last structure (the JPU neck by default)."""
        model = switch_on_zero_initialised(self.build(self.structures[-1]))
        torch._dynamo.reset()
        compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
        images = _images(model, 1, 64, 64)
        with torch.no_grad():
            torch.testing.assert_close(compiled(images), model(images), atol=1e-4, rtol=0)

    @pytest.mark.parametrize("in_chans", [1, 4])
    def test_other_input_channels(self, in_chans):
        """A greyscale and a 4-band model forward at the input's size (the backbone's stem follows in_chans; a head
        that reads the image takes ``in_chans``, or the check is skipped: such a head reads RGB only)."""
        try:
            model = self.build(in_chans=in_chans)
        except ConfigError as err:
            if "takes no in_chans" in str(err):
                pytest.skip(str(err))
            raise
        out = model(torch.randn(1, in_chans, 45, 61))
        assert out.shape == (1, self.num_classes, 45, 61) and torch.isfinite(out).all()

    def test_onnx_export_runs_at_other_sizes(self, tmp_path):
        pytest.importorskip("onnxruntime")
        from ..inference.export import check_export, export

        model = switch_on_zero_initialised(self.build())
        path = export(model, tmp_path / f"{self.head}.onnx", size=(64, 64), check=False)
        results = check_export(path, model, "onnx", sizes=[(2, 64, 64), (1, 96, 80)])
        assert all(result.ok for result in results), results
