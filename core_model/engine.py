"""A fast CPU generation engine: fused quantized projections, a static KV cache, batched decoding,
prefix caching, and the slot operations a continuous-batching scheduler needs.

The engine runs a Llama-shaped causal LM (``LlamaForCausalLM`` or ``DSuiteForCausalLM`` with full
attention and every expert active) with its own forward pass: one fused q/k/v and one fused gate/up
projection per block, weight-only int8/int4 kernels chosen per layer by a precision policy
(``core_model.quant.policy``), and a KV cache preallocated as ``(max_batch, n_kv, max_len, head_dim)`` per
layer. Sequences live in slots ``0..n-1``; a decode step advances every live slot by one token, each at
its own position.

Example::

    engine = Engine.from_base(load_base(None), policy="int4")
    outs = engine.generate([ids_a, ids_b], max_new_tokens=64)        # batched, greedy
    engine.cache_prefix(system_ids)                                     # prefix cache
    token, seconds = engine.first_token(system_ids + user_ids)          # time to first token
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from core_model.engine_weights import BlockWeights, Projection, build_blocks, float_weight
from core_model.errors import DSuiteError
from core_model.prefix_cache import PrefixCache, PrefixEntry
from core_model.quant import kernels
from core_model.quant.policy import Policy, parse_policy

logger = logging.getLogger(__name__)


class Engine:
    """Generation engine over a loaded base model (see the module docstring)."""

    def __init__(self, model, tokenizer=None, policy: str | Policy = "fp32", max_batch: int = 8,
                 max_len: int = 2048, prefix_capacity: int = 8, fused: bool = True) -> None:
        """Build the engine's weights and KV cache.

        Args:
            model: a Llama-shaped causal LM with HF module names (float or quantized with ``quantize_model``).
            tokenizer: its tokenizer (for text helpers and the end-of-sequence id).
            policy: precision policy or preset name (``fp32``, ``int8``, ``int4``, ``mixed``...).
            max_batch: slots in the KV cache (the largest batch).
            max_len: tokens per slot (prompt + generated).
            prefix_capacity: prefixes the prefix cache keeps.
            fused: run one-token decode steps through the C++ step over all blocks
                (``csrc/decode_step.cpp``) when the kernels are built; ``False`` keeps the PyTorch path
                (the reference the fused step is tested against).
        """
        if max_batch < 1 or max_len < 2:
            raise DSuiteError(f"max_batch must be >= 1 and max_len >= 2, got {max_batch} and {max_len}.")
        self.policy = policy if isinstance(policy, Policy) else parse_policy(policy)
        config = model.config
        self.policy.check_layers(config.num_hidden_layers)
        self.tokenizer = tokenizer
        self.config = config
        self.n_heads = config.num_attention_heads
        self.n_kv = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.n_heads
        self.eps = float(config.rms_norm_eps)
        self.max_batch, self.max_len = max_batch, max_len
        eos = config.eos_token_id if tokenizer is None else tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        with torch.no_grad():
            self.blocks: list[BlockWeights] = build_blocks(model, self.policy)
            self.embed = model.get_input_embeddings().weight.detach().float().clone()  # (V, D)
            self.final_norm = model.model.norm.weight.detach().float().clone()
            head_prec = self.policy.precision_for("lm_head")
            self.head = Projection.build(float_weight(model.get_output_embeddings()), *head_prec)
            self._rope_tables(model)
        shape = (max_batch, self.n_kv, max_len, self.head_dim)
        self.k_cache = [torch.zeros(shape) for _ in self.blocks]  # per layer (S, KV, L, hd)
        self.v_cache = [torch.zeros(shape) for _ in self.blocks]
        self.lengths = [0] * max_batch  # tokens cached per slot
        self.prefixes = PrefixCache(prefix_capacity)
        # per slot: (cached prefix, n) when the slot's first n cached positions still hold that prefix's K/V,
        # so a request on the same slot with the same prefix skips the copy (see _load_prefix)
        self._held: list[tuple[PrefixEntry, int] | None] = [None] * max_batch
        self.prefix_copies = 0  # times a cached prefix's K/V was copied into a slot (diagnostics)
        self._q_dim = self.n_heads * self.head_dim
        self._kv_dim = self.n_kv * self.head_dim
        self._step = self._fused_step() if fused else None

    def _fused_step(self):
        """The C++ decode step over this engine's blocks and KV cache, or ``None`` where it cannot run."""
        module = kernels.native()
        if module is None or self.head_dim % 8:
            return None
        step = module.DecodeStep(self.cos, self.sin_signed, self.n_heads, self.n_kv, self.head_dim, self.eps)
        for w, kc, vc in zip(self.blocks, self.k_cache, self.v_cache, strict=True):
            step.add_block(w.ln1, w.ln2, *w.qkv.native_args(), *w.o.native_args(), *w.gate_up.native_args(),
                           *w.down.native_args(), w.intermediate, kc, vc)
        return step

    @property
    def fused(self) -> bool:
        """Whether one-token decode steps run through the fused C++ step."""
        return self._step is not None

    @classmethod
    def from_base(cls, base, policy: str | Policy = "fp32", **kwargs) -> Engine:
        """An engine over a ``core_model.Base`` (its model and tokenizer)."""
        return cls(base.model, base.tokenizer, policy=policy, **kwargs)

    # --- weights ------------------------------------------------------------------------------------

    def _rope_tables(self, model) -> None:
        """cos/sin tables (max_len, hd) from the model's own rotary module (any rope scaling it has)."""
        rotary = model.model.rotary_emb
        pos = torch.arange(self.max_len)[None]  # (1, L)
        if next(iter(inspect.signature(rotary.forward).parameters), None) == "x":  # transformers: (x, ids)
            cos, sin = rotary(torch.zeros(1, dtype=torch.float32), pos)
        else:  # DSuite: (ids, dtype)
            cos, sin = rotary(pos, torch.float32)
        cos, sin = cos[0].float(), sin[0].float()  # (L, hd)
        half = self.head_dim // 2
        self.cos = cos.contiguous()
        self.sin_signed = torch.cat([-sin[:, :half], sin[:, half:]], -1).contiguous()  # rotate_half folded in

    def nbytes(self) -> int:
        """Bytes of the engine's weights (projections, norms, embedding)."""
        total = self.embed.numel() * 4 + self.head.nbytes() + self.final_norm.numel() * 4
        for b in self.blocks:
            total += b.qkv.nbytes() + b.o.nbytes() + b.gate_up.nbytes() + b.down.nbytes() + 8 * b.ln1.numel()
        return total

    # --- the forward pass ------------------------------------------------------------------------------

    def _forward(self, tokens: torch.Tensor, starts: list[int], slots: int | None = None) -> torch.Tensor:
        """Run ``tokens`` (B, T) through the blocks, writing K/V at positions ``starts[b] + t`` of slot b.

        Slots are ``0..B-1`` unless ``slots`` gives the single slot of a B=1 call. Returns the final
        normed hidden states (B, T, D); updates ``self.lengths``.
        """
        b, t = tokens.shape
        same = all(s == starts[0] for s in starts)
        if not same and t != 1:
            raise DSuiteError("Rows at different positions must decode one token each.")
        first = slots if slots is not None else 0
        self._overwrite(first, starts)
        if t == 1 and self._step is not None:  # the decode hot path: every block in one C++ call
            h = self._step.forward(self.embed[tokens[:, 0]], list(starts), first)  # (B, D)
            for r in range(b):
                self.lengths[first + r] = starts[r] + 1
            return F.rms_norm(h, (h.shape[-1],), self.final_norm, self.eps)[:, None]
        h = F.embedding(tokens, self.embed)  # (B, T, D)
        if same:
            s0 = starts[0]
            cos = self.cos[s0:s0 + t][None, :, None]  # (1, T, 1, hd)
            sin = self.sin_signed[s0:s0 + t][None, :, None]
            total = s0 + t
            mask = None
            causal = t > 1 and s0 == 0
            if t > 1 and s0 > 0:  # queries at s0..s0+T-1 see keys 0..their own position
                mask = _additive_mask(torch.arange(s0, total)[:, None], total)[None, None]  # (1, 1, T, S)
        else:
            pos = torch.tensor(starts)
            cos = self.cos[pos][:, None, None]  # (B, 1, 1, hd)
            sin = self.sin_signed[pos][:, None, None]
            total = max(starts) + 1
            mask = _additive_mask(pos[:, None], total)[:, None, None]  # (B, 1, 1, S)
            causal = False
            rows = torch.arange(b)
        hq, hkv, hd = self.n_heads, self.n_kv, self.head_dim
        qk_dim = self._q_dim + self._kv_dim
        for i, w in enumerate(self.blocks):
            x = F.rms_norm(h, (h.shape[-1],), w.ln1, self.eps)
            qkv = w.qkv(x.view(b * t, -1)).view(b, t, -1)  # (B, T, (H + 2 KV) hd)
            qk = qkv[..., :qk_dim].view(b, t, hq + hkv, hd)
            qk = torch.addcmul(qk * cos, qk.roll(hd // 2, -1), sin)  # rotary on q and k at once
            q = qk[:, :, :hq].transpose(1, 2)  # (B, H, T, hd)
            k = qk[:, :, hq:].transpose(1, 2)  # (B, KV, T, hd)
            v = qkv[..., qk_dim:].view(b, t, hkv, hd).transpose(1, 2)  # (B, KV, T, hd)
            kc, vc = self.k_cache[i], self.v_cache[i]
            if same:
                kc[first:first + b, :, s0:total] = k
                vc[first:first + b, :, s0:total] = v
            else:
                kc[rows, :, pos] = k[:, :, 0]
                vc[rows, :, pos] = v[:, :, 0]
            att = F.scaled_dot_product_attention(
                q, kc[first:first + b, :, :total], vc[first:first + b, :, :total],
                attn_mask=mask, is_causal=causal, enable_gqa=True,
            )  # (B, H, T, hd)
            h += w.o(att.transpose(1, 2).reshape(b * t, -1)).view(b, t, -1)  # h is this call's own tensor
            x = F.rms_norm(h, (h.shape[-1],), w.ln2, self.eps)
            gu = w.gate_up(x.view(b * t, -1))  # (B T, 2 I)
            act = F.silu(gu[:, :w.intermediate]) * gu[:, w.intermediate:]
            h += w.down(act).view(b, t, -1)
        for r in range(b):
            self.lengths[first + r] = starts[r] + t
        return F.rms_norm(h, (h.shape[-1],), self.final_norm, self.eps)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits for hidden states (..., D) -> (..., V)."""
        shape = hidden.shape
        return self.head(hidden.reshape(-1, shape[-1])).view(*shape[:-1], -1)

    # --- slot operations (used by generate and by the scheduler) -----------------------------------------

    def _check_room(self, slot: int, extra: int) -> None:
        if not 0 <= slot < self.max_batch:
            raise DSuiteError(
                f"Slot {slot} is out of range: the engine has {self.max_batch} slots (max_batch)."
            )
        if self.lengths[slot] + extra > self.max_len:
            raise DSuiteError(
                f"Sequence of {self.lengths[slot] + extra} tokens exceeds the engine's "
                f"max_len={self.max_len}; "
                "build the engine with a larger max_len or shorten the prompt."
            )

    @torch.inference_mode()
    def prefill(self, slot: int, ids: Sequence[int], use_prefix_cache: bool = True,
                all_logits: bool = False, chunk: int = 512) -> torch.Tensor:
        """Start a sequence in ``slot`` from prompt ``ids``; returns the last position's logits (V,).

        A cached prefix (``cache_prefix``) sharing the start of ``ids`` is copied in instead of recomputed.
        With ``all_logits`` it returns (T, V) logits of every prompt position (prefix cache off).
        """
        ids = list(ids)
        if not ids:
            raise DSuiteError("Cannot prefill an empty prompt: give at least one token id.")
        self.lengths[slot] = 0
        self._check_room(slot, len(ids))
        start = 0
        if use_prefix_cache and not all_logits:
            entry, start = self.prefixes.lookup(ids)
            if entry is not None:
                self._load_prefix(slot, entry, start)
        outs = []
        for c0 in range(start, len(ids), chunk):
            piece = torch.tensor([ids[c0:c0 + chunk]])
            hidden = self._forward(piece, [c0], slots=slot)[0]  # (T, D)
            outs.append(self.logits(hidden) if all_logits else hidden[-1:])
        if all_logits:
            return torch.cat(outs, 0)
        return self.logits(outs[-1])[0]

    @torch.inference_mode()
    def decode(self, tokens: Sequence[int]) -> torch.Tensor:
        """Advance slots ``0..B-1`` by one token each (``tokens[b]`` for slot b); returns logits (B, V)."""
        b = len(tokens)
        for slot in range(b):
            self._check_room(slot, 1)
        hidden = self._forward(torch.tensor(tokens)[:, None], self.lengths[:b])  # (B, 1, D)
        return self.logits(hidden[:, 0])

    def move_slot(self, src: int, dst: int) -> None:
        """Copy the sequence in slot ``src`` into slot ``dst`` (to keep live slots contiguous)."""
        n = self.lengths[src]
        for kc, vc in zip(self.k_cache, self.v_cache, strict=True):
            kc[dst, :, :n] = kc[src, :, :n]
            vc[dst, :, :n] = vc[src, :, :n]
        self.lengths[dst] = n
        self.lengths[src] = 0
        held = self._held[src]
        self._held[dst] = (held[0], min(held[1], n)) if held is not None and n > 0 else None
        self._held[src] = None

    # --- prefix cache ------------------------------------------------------------------------------------

    def _load_prefix(self, slot: int, entry: PrefixEntry, n: int) -> None:
        """Make the first ``n`` cached positions of ``slot`` hold ``entry``'s keys and values.

        The copy (every layer's keys and values of the prefix) is skipped when the slot still holds them
        from the previous request with this prefix: a request only writes the positions after the prefix.
        """
        held = self._held[slot]
        if held is not None and held[0] is entry and held[1] >= n:
            return
        for i in range(len(self.blocks)):
            self.k_cache[i][slot, :, :n] = entry.keys[i][:, :n]
            self.v_cache[i][slot, :, :n] = entry.values[i][:, :n]
        self._held[slot] = (entry, n)
        self.prefix_copies += 1

    def _overwrite(self, first: int, starts: list[int]) -> None:
        """Note that slot ``first + r`` is about to be written from position ``starts[r]`` on."""
        for r, start in enumerate(starts):
            held = self._held[first + r]
            if held is not None and start < held[1]:
                self._held[first + r] = (held[0], start) if start > 0 else None

    @torch.inference_mode()
    def cache_prefix(self, ids: Sequence[int], slot: int | None = None) -> PrefixEntry:
        """Compute and keep the KV cache of a shared prompt prefix (e.g. a system prompt's tokens).

        Later ``prefill``/``generate``/``first_token`` calls whose prompt starts with (part of) these ids
        copy the cached keys and values instead of recomputing them.

        Args:
            ids: the prefix token ids (see ``chat_prefix_ids`` for a chat system turn).
            slot: scratch slot to compute in (default: the last slot; its sequence is overwritten).
        """
        ids = tuple(int(i) for i in ids)
        if not ids:
            raise DSuiteError("Cannot cache an empty prefix: give at least one token id.")
        slot = self.max_batch - 1 if slot is None else slot
        self.prefill(slot, ids, use_prefix_cache=False)
        n = len(ids)
        entry = PrefixEntry(
            ids=ids,
            keys=[kc[slot, :, :n].clone() for kc in self.k_cache],
            values=[vc[slot, :, :n].clone() for vc in self.v_cache],
        )
        self.prefixes.put(entry)
        self.lengths[slot] = 0
        return entry

    def chat_prefix_ids(self, system: str) -> list[int]:
        """Token ids of a chat prompt's system turn (shared by every request with that system prompt)."""
        if self.tokenizer is None:
            raise DSuiteError("chat_prefix_ids needs the engine to have a tokenizer.")
        text = self.tokenizer.apply_chat_template([{"role": "system", "content": system}], tokenize=False)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def chat_ids(self, user: str, system: str | None = None) -> list[int]:
        """Token ids of a full chat prompt (system turn, user turn, assistant header)."""
        if self.tokenizer is None:
            raise DSuiteError("chat_ids needs the engine to have a tokenizer.")
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": user})
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def first_token(self, ids: Sequence[int], slot: int = 0) -> tuple[int, float]:
        """Greedy first token of prompt ``ids`` and the seconds it took (time to first token)."""
        start = time.perf_counter()
        token = int(self.prefill(slot, ids).argmax())
        return token, time.perf_counter() - start

    # --- generation -----------------------------------------------------------------------------------------

    @staticmethod
    def sample(logits: torch.Tensor, temperature: float = 0.0, top_p: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Next tokens from logits (B, V): greedy at temperature 0, else top-p sampling."""
        if temperature <= 0:
            return logits.argmax(-1)
        probs = torch.softmax(logits / temperature, -1)
        if top_p < 1.0:
            sorted_p, order = probs.sort(-1, descending=True)
            keep = sorted_p.cumsum(-1) - sorted_p < top_p
            sorted_p = sorted_p * keep
            choice = torch.multinomial(sorted_p / sorted_p.sum(-1, keepdim=True), 1, generator=generator)
            return order.gather(-1, choice)[:, 0]
        return torch.multinomial(probs, 1, generator=generator)[:, 0]

    @torch.inference_mode()
    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: int = 128, temperature: float = 0.0,
                 top_p: float = 1.0, stop_at_eos: bool = True, progress: bool = False) -> list[list[int]]:
        """Generate for a batch of prompts (token ids) together; returns the new token ids per prompt.

        Prompts are not padded (each slot has its own length), and a row that ends (its end-of-sequence
        token) leaves the batch: later decode steps run only the rows still generating.

        Args:
            prompts: up to ``max_batch`` prompts.
            max_new_tokens: tokens to generate per prompt.
            temperature: 0 = greedy.
            top_p: nucleus sampling mass when sampling.
            stop_at_eos: stop a row at its end-of-sequence token (otherwise always ``max_new_tokens``).
            progress: show a progress bar over decode steps.
        """
        if not prompts or len(prompts) > self.max_batch:
            raise DSuiteError(
                f"generate takes 1 to {self.max_batch} prompts (max_batch), got {len(prompts)}."
            )
        if max_new_tokens < 1:
            raise DSuiteError(f"max_new_tokens must be at least 1, got {max_new_tokens}.")
        last = torch.stack([self.prefill(slot, ids) for slot, ids in enumerate(prompts)])  # (B, V)
        outs: list[list[int]] = [[] for _ in prompts]
        rows = list(range(len(prompts)))  # rows[s]: the prompt whose sequence lives in slot s
        for step in tqdm(range(max_new_tokens), desc="decoding", disable=not progress, unit="tok"):
            nxt = self.sample(last, temperature, top_p).tolist()
            keep = []
            for s, tok in enumerate(nxt):
                outs[rows[s]].append(tok)
                if not (stop_at_eos and tok in self.eos_ids):
                    keep.append(s)
            if not keep or step == max_new_tokens - 1:
                break
            if len(keep) < len(rows):  # drop finished rows: later steps only run the live ones
                for dst, src in enumerate(keep):  # src >= dst and ascending: no live slot is overwritten
                    if src != dst:
                        self.move_slot(src, dst)
                rows = [rows[s] for s in keep]
                nxt = [nxt[s] for s in keep]
            last = self.decode(nxt)
        return outs

    def generate_text(self, prompt: str, system: str | None = None, max_new_tokens: int = 128,
                      temperature: float = 0.0) -> str:
        """Chat-format ``prompt``, generate, and decode the reply text."""
        ids = self.chat_ids(prompt, system)
        out = self.generate([ids], max_new_tokens=max_new_tokens, temperature=temperature)[0]
        return self.tokenizer.decode(out, skip_special_tokens=True)

    @torch.inference_mode()
    def perplexity(self, texts_or_ids: Sequence, max_tokens: int = 1024) -> float:
        """Perplexity over texts (or token id lists): exp of the mean next-token negative log-likelihood."""
        nll, count = 0.0, 0
        for item in texts_or_ids:
            ids = self.tokenizer(item)["input_ids"] if isinstance(item, str) else list(item)
            ids = ids[:min(max_tokens, self.max_len)]
            if len(ids) < 2:
                continue
            logits = self.prefill(0, ids, use_prefix_cache=False, all_logits=True)  # (T, V)
            nll += F.cross_entropy(logits[:-1], torch.tensor(ids[1:]), reduction="sum").item()
            count += len(ids) - 1
        if count == 0:
            raise DSuiteError("perplexity needs at least one text of two or more tokens.")
        return float(torch.exp(torch.tensor(nll / count)))


def _additive_mask(q_pos: torch.Tensor, total: int) -> torch.Tensor:
    """Float attention mask (..., S): 0 where key position j <= the query position, -inf after it.

    Built once per forward: SDPA would otherwise turn a boolean mask into this in every layer.
    """
    future = torch.arange(total) > q_pos  # (..., S)
    return torch.zeros(future.shape).masked_fill_(future, float("-inf"))
