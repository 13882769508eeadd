"""The LLaVA-ST model: config, modeling, loading, sampling.

Importing this package registers ``llava_qwen`` with transformers' Auto classes (as the official
code does), so ``AutoConfig``/``AutoTokenizer`` read official checkpoints without warnings and
``AutoModelForCausalLM.from_pretrained`` builds our ``LlavaSTForCausalLM``.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModelForCausalLM

from stchat.model.configuration_llava_st import LlavaSTConfig
from stchat.model.modeling_llava_st import LlavaSTForCausalLM

AutoConfig.register("llava_qwen", LlavaSTConfig, exist_ok=True)
AutoModelForCausalLM.register(LlavaSTConfig, LlavaSTForCausalLM, exist_ok=True)

__all__ = ["LlavaSTConfig", "LlavaSTForCausalLM"]
