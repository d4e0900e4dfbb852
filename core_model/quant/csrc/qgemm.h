// Declarations shared by the kernel sources of the dsuite_qgemm extension.
#pragma once
#include <torch/extension.h>

torch::Tensor int4_linear(torch::Tensor x, torch::Tensor q, torch::Tensor d, torch::Tensor m, int64_t gs);
torch::Tensor int8_linear(torch::Tensor x, torch::Tensor q, torch::Tensor s);
void register_decode_step(pybind11::module_& mod);
