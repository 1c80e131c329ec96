"""Hugging Face transformers classes for a LowRank.Build compressed artifact.

LowRank.Build writes this file into every compressed artifact; config.json names it through `auto_map`:

    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(ARTIFACT, trust_remote_code=True)

builds the base family's model (LLaMA, Mistral, Qwen2, OPT or GPT-2) with every linear listed in the config's
`lowrank.truncation_ranks` replaced by two nn.Linear of rank k, B [k, in] then A [out, k] (y = A (B x) + b), whose
weights are the artifact's `<linear>.lowrank_B.weight` and `<linear>.lowrank_A.weight`, and loads every tensor of the
artifact; a tensor missing or left over is an error, never a random initialisation. Quantized artifacts (format
version 2: `lowrank.quantization.linears`) keep their integer codes as buffers under the artifact's names
(`.qweight`, `.scales`, `.qzeros`) and dequantize them in each forward (exact, not fast: `dotnet lowrank export
ARTIFACT --dense` or `--onnx` gives a faster model).

The artifact's `model_type` is `lowrank_<family>` and its architecture `LowRank<Architecture>`, which no stock
transformers class claims, so a load without `trust_remote_code=True` stops with transformers' "custom code" error
instead of building the dense model and filling the missing weights with random values.

The tensor layout is the README's "The compressed artifact" and "Quantized tensors". Needs torch and transformers
(4.40 or later) only.
"""
import torch
from torch import nn
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, MistralConfig,
                          MistralForCausalLM, OPTConfig, OPTForCausalLM, Qwen2Config, Qwen2ForCausalLM)

SECTION = "lowrank"
NEWEST_FORMAT = 2  # the newest artifact format_version these classes read


def parse_format(name):
    """'int8' -> (8, 0, False); 'int4-g128' -> (4, 128, False); 'int3-g64-zp' -> (3, 64, True)."""
    parts = name.split("-")
    bits = int(parts[0][3:])
    group = next((int(p[1:]) for p in parts[1:] if p.startswith("g")), 0 if bits == 8 else 128)
    return bits, group, "zp" in parts[1:]


def unpack(packed, bits):
    """uint8 [..., n] -> codes [..., n*8/bits]: each row of bytes is one little-endian bit stream, code i in bits [i*b, i*b+b)."""
    shifts = torch.arange(8, dtype=torch.uint8, device=packed.device)
    stream = ((packed.unsqueeze(-1) >> shifts) & 1).reshape(*packed.shape[:-1], -1, bits).to(torch.int64)
    return (stream << torch.arange(bits, device=packed.device)).sum(-1)


class QuantizedLinear(nn.Module):
    """y = x W^T (+ b) with W [rows, cols] stored as integer codes: int8 per output row (W = q·s), or B-bit codes in
    groups of G input columns with fp16 scales and, with -zp, packed zero points (W = (c − z)·s)."""

    def __init__(self, rows, cols, format_name, bias=False):
        super().__init__()
        self.rows, self.cols, self.format_name = rows, cols, format_name
        self.bits, self.group, zero_points = parse_format(format_name)
        if self.bits == 8:
            self.register_buffer("qweight", torch.zeros(rows, cols, dtype=torch.int8))
            self.register_buffer("scales", torch.zeros(rows, dtype=torch.float16))
        else:
            groups = -(-cols // self.group)
            self.register_buffer("qweight", torch.zeros(rows, groups, self.group * self.bits // 8, dtype=torch.uint8))
            self.register_buffer("scales", torch.zeros(rows, groups, dtype=torch.float16))
            if zero_points:
                self.register_buffer("qzeros", torch.zeros(rows, -(-groups * self.bits // 8), dtype=torch.uint8))
        self.bias = nn.Parameter(torch.zeros(rows)) if bias else None

    def dequantized(self):
        """W [rows, cols] in fp32."""
        scales = self.scales.to(torch.float32)
        if self.bits == 8:
            return self.qweight.to(torch.float32) * scales.unsqueeze(1)
        groups = scales.shape[1]
        codes = unpack(self.qweight, self.bits).to(torch.float32)  # [rows, groups, G]
        zeros = getattr(self, "qzeros", None)
        if zeros is None:
            zero = torch.full((self.rows, groups), float(1 << (self.bits - 1)), dtype=torch.float32, device=codes.device)
        else:
            # A row's zero points fill ceil(groups*bits/8) bytes; pad to whole codes before unpacking.
            whole = nn.functional.pad(zeros, (0, (-zeros.shape[1]) % self.bits))
            zero = unpack(whole, self.bits)[:, :groups].to(torch.float32)
        values = (codes - zero.unsqueeze(2)) * scales.unsqueeze(2)
        return values.reshape(self.rows, groups * self.group)[:, :self.cols]

    def forward(self, x):
        return nn.functional.linear(x, self.dequantized().to(x.dtype), self.bias)


class LowRankLinear(nn.Module):
    """y = A (B x) + b: stands in for nn.Linear (or GPT-2's Conv1D) of shape [out, in]."""

    def __init__(self, in_features, out_features, rank, bias, format_name=None):
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        if format_name is None:
            self.lowrank_B = nn.Linear(in_features, rank, bias=False)   # <linear>.lowrank_B.weight [k, in]
            self.lowrank_A = nn.Linear(rank, out_features, bias=False)  # <linear>.lowrank_A.weight [out, k]
        else:
            self.lowrank_B = QuantizedLinear(rank, in_features, format_name)   # <linear>.lowrank_B.qweight, ...
            self.lowrank_A = QuantizedLinear(out_features, rank, format_name)  # <linear>.lowrank_A.qweight, ...
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x):
        y = self.lowrank_A(self.lowrank_B(x))
        return y if self.bias is None else y + self.bias


def lowrank_section(config):
    section = getattr(config, SECTION, None)
    if not isinstance(section, dict) or "truncation_ranks" not in section:
        raise ValueError(f"config.json has no '{SECTION}' section with truncation_ranks: not a LowRank.Build compressed artifact")
    version = section.get("format_version", 1)
    if version > NEWEST_FORMAT:
        raise ValueError(f"the artifact has lowrank.format_version {version}; this modeling_lowrank.py reads up to {NEWEST_FORMAT}")
    return section


def locate(model, name):
    """The module a checkpoint name (e.g. model.layers.0.self_attn.q_proj) denotes, with its parent and attribute name;
    a checkpoint saved from the base model (without the base_model_prefix) is found too."""
    prefix = getattr(model, "base_model_prefix", "")
    for candidate in (name, f"{prefix}.{name}" if prefix else None):
        if candidate is None:
            continue
        parent_name, _, child = candidate.rpartition(".")
        try:
            parent = model.get_submodule(parent_name) if parent_name else model
        except AttributeError:
            continue
        if isinstance(getattr(parent, child, None), nn.Module):
            return parent, child, getattr(parent, child)
    raise ValueError(f"the artifact lists '{name}', which is not a module of {type(model).__name__}")


def factorise(model, config):
    """Replaces every linear the lowrank section lists: factorised ones by LowRankLinear, quantized dense ones by QuantizedLinear."""
    section = lowrank_section(config)
    ranks = section["truncation_ranks"]
    quantized = (section.get("quantization") or {}).get("linears", {})
    for name in sorted(set(ranks) | set(quantized)):
        parent, child, module = locate(model, name)
        if isinstance(module, nn.Linear):
            in_features, out_features = module.in_features, module.out_features
        else:  # GPT-2's Conv1D keeps its weight as [in, out]
            in_features, out_features = module.weight.shape
        info = quantized.get(name)
        if info is not None and (info["out_features"], info["in_features"]) != (out_features, in_features):
            raise ValueError(f"'{name}' is [{out_features}, {in_features}] in the model but [{info['out_features']}, {info['in_features']}] in lowrank.quantization")
        format_name = None if info is None else info["format"]
        bias = getattr(module, "bias", None) is not None
        if name in ranks:
            replacement = LowRankLinear(in_features, out_features, ranks[name], bias, format_name)
        else:
            replacement = QuantizedLinear(out_features, in_features, format_name, bias)
        setattr(parent, child, replacement)


class LowRankModel:
    """Mixed in before the base family's class: factorises the model as it is built, and makes from_pretrained fail
    when any tensor of the model is missing from the artifact, or any tensor of the artifact is left unused."""

    # Quantization scales are fp16 values: keep them in fp32 when the model is loaded in fp16 or bf16 (transformers 5;
    # transformers 4 honours the first list for fp16 only, so a bf16 load there rounds the scales to bf16).
    _keep_in_fp32_modules = ["scales"]
    _keep_in_fp32_modules_strict = ["scales"]

    def __init__(self, config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        factorise(self, config)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        wants_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        tied = set(getattr(model, "_tied_weights_keys", None) or [])
        missing = sorted(set(info.get("missing_keys", [])) - tied)
        unexpected = sorted(info.get("unexpected_keys", []))
        mismatched = info.get("mismatched_keys", [])
        if missing or unexpected or mismatched:
            raise ValueError(f"{cls.__name__}: the artifact does not match the model: missing {missing}, "
                             f"unexpected {unexpected}, wrong shape {mismatched}")
        return (model, info) if wants_info else model


class LowRankLlamaConfig(LlamaConfig):
    model_type = "lowrank_llama"


class LowRankLlamaForCausalLM(LowRankModel, LlamaForCausalLM):
    config_class = LowRankLlamaConfig


class LowRankMistralConfig(MistralConfig):
    model_type = "lowrank_mistral"


class LowRankMistralForCausalLM(LowRankModel, MistralForCausalLM):
    config_class = LowRankMistralConfig


class LowRankQwen2Config(Qwen2Config):
    model_type = "lowrank_qwen2"


class LowRankQwen2ForCausalLM(LowRankModel, Qwen2ForCausalLM):
    config_class = LowRankQwen2Config


class LowRankOPTConfig(OPTConfig):
    model_type = "lowrank_opt"


class LowRankOPTForCausalLM(LowRankModel, OPTForCausalLM):
    config_class = LowRankOPTConfig


class LowRankGPT2Config(GPT2Config):
    model_type = "lowrank_gpt2"


class LowRankGPT2LMHeadModel(LowRankModel, GPT2LMHeadModel):
    config_class = LowRankGPT2Config
