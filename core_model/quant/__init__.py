"""Weight-only quantization: int8 per output channel and int4 grouped, with a per-layer policy.

``quantize_model(model, "mixed")`` swaps the model's linear layers for ``QuantLinear`` (fast AVX2 kernels in
``csrc/qgemm.cpp``, a PyTorch reference elsewhere). LoRA adapters (peft) wrap ``QuantLinear`` like any
``nn.Linear`` and run unmerged on top of the quantized product.
"""

from core_model.quant.apply import QuantReport, model_nbytes, quantize_model
from core_model.quant.linear import QuantLinear
from core_model.quant.policy import Policy, parse_policy, presets

__all__ = [
    "Policy", "QuantLinear", "QuantReport", "model_nbytes", "parse_policy", "presets", "quantize_model",
]
